/**
 * What one RL iteration reports in metrics.jsonl (deterministic: no times), typed. The key order
 * of {@link IterationMetrics} is the order of the JSON line.
 *
 * @module
 */
import { std } from "./advantages.ts";

/** Mean and population standard deviation of a batch of values. */
export interface MeanStd {
  mean: number;
  std: number;
}

/** The same, with the values themselves (one per query). */
export interface MeanStdValues extends MeanStd {
  values: number[];
}

/** One line of metrics.jsonl. Challenger fields are null (or absent) when there is none. */
export interface IterationMetrics {
  iter: number;
  /** Task reward R over all answers. */
  solverReward: MeanStd;
  /** V(q_i) per query. */
  queryValue: MeanStdValues;
  /** Share of queries whose G solver rewards are all equal (no signal for the solver). */
  zeroVarianceShare: number;
  loss: { total: number; solver: number; challenger: number };
  /**
   * Drift from the reference per role, whatever the loss uses: per-token means of the k1 and k3
   * estimates of KL(pi || ref) on the sampled tokens (k3 is never negative).
   */
  kl: { solver: KlPerToken; challenger: KlPerToken | null };
  length: {
    query: MeanStd | null;
    answer: MeanStd;
    queryStoppedShare: number | null;
    answerStoppedShare: number;
  };
  /**
   * Mean -log pi of the sampled tokens: an unbiased estimate of the entropy when sampling at
   * temperature 1 with topP 1 (otherwise of the cross-entropy to the sampler).
   */
  entropy: { solver: number; challenger: number | null };
  gradNorm: number;
  clipScale: number;
  lr: number;
  /** The training forward's log-probs against generation's, bit for bit. */
  logprobCheck: { compared: number; mismatches: number; maxAbsDiff: number };
  /** LSP and LSP-Zero only. */
  challengerAdvantage?: MeanStdValues;
  challengerReward?: MeanStd;
  /** LSP and LSP-Zero only: what the challenger wrote (validity where the task reward can tell). */
  queries?: QueryStats;
  /** LSP only: R_Q as judged (before `selfReward.scale`), its distribution and failures. */
  selfReward?: SelfRewardStats;
}

/** Per-token means of the KL estimates of one role. */
export interface KlPerToken {
  k1: number;
  k3: number;
}

/** The challenger's queries of one iteration. */
export interface QueryStats {
  /** Distinct queries / N. */
  distinctShare: number;
  /** Shares of well-formed and in-range queries, or null when the task reward cannot tell. */
  wellFormedShare: number | null;
  inRangeShare: number | null;
}

/** The self-reward judge's verdicts of one iteration. */
export interface SelfRewardStats extends MeanStd {
  malformed: number;
  outOfRange: number;
  /** Judgements cut off by maxNewTokens. */
  truncated: number;
  /** histogram[k]: readable judgements that scored k. */
  histogram: number[];
}

/** Arithmetic mean (0 for no values). */
export const mean = (xs: readonly number[]): number =>
  xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;

/** Mean and standard deviation (0 and 0 for no values). */
export const meanStd = (xs: number[]): MeanStd => ({
  mean: mean(xs),
  std: xs.length ? std(xs) : 0,
});

/** Mean and standard deviation with the values. */
export const meanStdValues = (xs: number[]): MeanStdValues => ({ ...meanStd(xs), values: xs });
