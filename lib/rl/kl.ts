/**
 * The KL term of LSP and GRPO against the frozen reference: which estimator, and where it acts
 * (LSP.md, "One iteration", step 4, and its note on the KL). With lr_t = log pi(x_t|x<t) -
 * log pi_ref(x_t|x<t) on the sampled tokens, and sequences sampled from pi:
 *
 * - in the loss, per token (lib/train/losses.ts's `klTerm`), beta * sum_t k(lr_t) with
 *   - k1 = lr: expected gradient beta * E[sum_t grad log pi_t] = 0. It regularises nothing and
 *     the reference never enters the update (kept selectable for ablations; a run says so);
 *   - k2 = lr^2 / 2: expected gradient beta * E_prefix[sum_t grad KL(pi_t || ref_t)], the
 *     per-position KL(pi || ref) gradient with the prefix distribution held fixed;
 *   - k3 = exp(-lr) + lr - 1: expected gradient beta * E_prefix[sum_t grad KL(ref_t || pi_t)],
 *     the reverse direction per position (TRL's GRPOTrainer);
 * - in the reward, k1 only: each sequence's reward minus beta * sum_t lr_t (a number: a
 *   stop-gradient), before advantages. Its expected gradient is beta * grad KL(pi || ref) of the
 *   whole sequence, times (1 - 1/G) for a group-mean baseline over G samples: the classic RLHF form
 *   of the paper's own estimator. k2 and k3 have no exact meaning there (their value depends on
 *   theta, so a stop-gradient drops part of their gradient) and are refused.
 *
 * tests/rl_kl_expectation_test.ts checks each statement by exact enumeration on a tabular policy.
 *
 * @module
 */
import type { KlEstimator } from "../train/losses.ts";

/** Where the KL term acts. */
export type KlPlacement = "loss" | "reward";

/** The KL option of a run: `loss.kl` in a manifest (beta is `loss.beta`). */
export interface KlOptions {
  estimator: KlEstimator;
  in: KlPlacement;
}

/** Why a KL option has no exact meaning (k2 or k3 in the reward), or null when it is fine. */
export function klOptionProblem(o: KlOptions): string | null {
  if (o.in === "reward" && o.estimator !== "k1") {
    return `estimator ${o.estimator} cannot go in the reward: a per-sequence penalty is exact ` +
      `only for k1 (the log-ratio); use "in": "loss" for k2 and k3`;
  }
  return null;
}

/** True for k1 in the loss, whose expected gradient is zero whatever the reference. */
export function klIsInert(o: KlOptions): boolean {
  return o.in === "loss" && o.estimator === "k1";
}

/** One sampled sequence's log-ratio to the reference, summed over its tokens. */
export interface SequenceKl {
  /** Scored (sampled) tokens. */
  tokens: number;
  /** sum_t lr_t: the k1 estimate of the sequence's KL(pi || ref). */
  k1: number;
  /** sum_t (exp(-lr_t) + lr_t - 1): the k3 estimate, never negative. */
  k3: number;
}

/** The KL statistics of a sequence from its generation and reference log-probs. */
export function sequenceKl(
  logprobs: readonly number[],
  refLogprobs: readonly number[],
): SequenceKl {
  if (logprobs.length !== refLogprobs.length) {
    throw new Error(
      `sequenceKl: ${logprobs.length} log-probs but ${refLogprobs.length} reference log-probs`,
    );
  }
  let k1 = 0, k3 = 0;
  for (let t = 0; t < logprobs.length; t++) {
    const lr = logprobs[t] - refLogprobs[t];
    k1 += lr;
    k3 += Math.exp(-lr) + lr - 1;
  }
  return { tokens: logprobs.length, k1, k3 };
}

/** Per-token means of a set of sequences' KL estimates (0 for no tokens). */
export function meanKlPerToken(kls: readonly SequenceKl[]): { k1: number; k3: number } {
  const n = kls.reduce((a, k) => a + k.tokens, 0);
  if (n === 0) return { k1: 0, k3: 0 };
  return {
    k1: kls.reduce((a, k) => a + k.k1, 0) / n,
    k3: kls.reduce((a, k) => a + k.k3, 0) / n,
  };
}
