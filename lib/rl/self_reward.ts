/**
 * The quality self-reward R_Q of LSP (LSP.md, "LSP-Zero vs LSP"): the frozen reference model acts
 * as a judge. It is shown the judge prompt with `{instruction}` (the query) and `{response}` (the
 * answer) filled, justifies its grading criterion by criterion, writes the calculation (each
 * criterion's point, then the sum) and ends with the total between score tags.
 *
 * The total is read by lib/rewards/score_tag.ts (the last score tag, case and whitespace
 * tolerant, a whole number in 0..max); a malformed or out-of-range judgement scores `fallback`
 * (a manifest knob, default 0) and is counted, as is a judgement cut off by maxNewTokens, so a
 * judge that stops following the format shows up in the metrics instead of silently shifting
 * rewards.
 *
 * @module
 */
import { generateReplies } from "../model/chat_replies.ts";
import type { LlamaModel } from "../model/llama.ts";
import type { ChatTokenizer } from "../model/tokenizer.ts";
import type { RewardItem } from "../rewards/reward.ts";
import { parseScoreTag, type ScoreStatus } from "../rewards/score_tag.ts";
import { judgeConversation } from "./conversations.ts";
import { Registry } from "../util/registry.ts";

/** Options of the {@link SelfRewardJudge}. */
export interface SelfRewardOptions {
  /** Judge prompt template with `{instruction}` and `{response}`. */
  prompt: string;
  maxNewTokens: number;
  /** Sampling temperature of the judge (0 = greedy). */
  temperature: number;
  /** Highest score (default 7) and the fallback for unreadable outputs (default 0). */
  max?: number;
  fallback?: number;
  /** Conversations per generate() call (default 8). */
  batchSize?: number;
}

/** One batch of judgements: scores, the raw outputs and the parse tally. */
export interface SelfRewardResult {
  scores: number[];
  outputs: string[];
  statuses: ScoreStatus[];
  /** Outputs with no readable score (malformed) and with a score outside 0..max. */
  malformed: number;
  outOfRange: number;
  /** Outputs cut off by maxNewTokens (no stop token): too few tokens for the judgement. */
  truncated: number;
  /** Counts of readable scores: histogram[k] = judgements that scored k (0..max). */
  histogram: number[];
}

/** Whatever gives R_Q for a batch of (query, answer) pairs. */
export interface QualityJudge {
  /** Judges every pair; RNG row i is item i, `stream` separates iterations. */
  score(items: readonly RewardItem[], seed: number, stream: number): Promise<SelfRewardResult>;
}

/** An exact judge of one pair: its score (0..max) and the judgement's text. */
export type QualityOracle = (item: RewardItem) => { score: number; text: string };

/**
 * Exact judges other parts of the program provide (the tiny world's rubric), for oracle
 * ablations: `selfReward.judge` names one instead of "reference".
 */
export const QUALITY_ORACLES: Registry<QualityOracle> = new Registry<QualityOracle>(
  "quality oracle",
);

/** A {@link QualityJudge} from an oracle: every judgement readable, none truncated. */
export function oracleJudge(oracle: QualityOracle, max: number): QualityJudge {
  return {
    score(items) {
      const judged = items.map(oracle);
      const histogram = new Array<number>(max + 1).fill(0);
      for (const j of judged) {
        if (!(Number.isInteger(j.score) && j.score >= 0 && j.score <= max)) {
          throw new Error(`quality oracle: score ${j.score} outside 0..${max}`);
        }
        histogram[j.score]++;
      }
      return Promise.resolve({
        scores: judged.map((j) => j.score),
        outputs: judged.map((j) => j.text),
        statuses: judged.map(() => "ok" as const),
        malformed: 0,
        outOfRange: 0,
        truncated: 0,
        histogram,
      });
    },
  };
}

/** R_Q(q, a) from the frozen reference model acting as the judge. */
export class SelfRewardJudge implements QualityJudge {
  readonly model: LlamaModel;
  readonly tokenizer: ChatTokenizer;
  readonly options: SelfRewardOptions;

  constructor(model: LlamaModel, tokenizer: ChatTokenizer, options: SelfRewardOptions) {
    for (const slot of ["{instruction}", "{response}"]) {
      if (!options.prompt.includes(slot)) {
        throw new Error(`selfReward.prompt: missing the ${slot} slot`);
      }
    }
    this.model = model;
    this.tokenizer = tokenizer;
    this.options = options;
  }

  /** Judges every (query, answer) pair; RNG row i is item i, `stream` separates iterations. */
  async score(
    items: readonly RewardItem[],
    seed: number,
    stream: number,
  ): Promise<SelfRewardResult> {
    const o = this.options;
    const conversations = items.map((it) => judgeConversation(o.prompt, it.query, it.answer));
    const replies = await generateReplies(this.model, this.tokenizer, conversations, {
      temperature: o.temperature,
      maxNewTokens: o.maxNewTokens,
      seed,
      stream,
      batchSize: o.batchSize,
    });
    const max = o.max ?? 7;
    const parsed = replies.texts.map((t) => parseScoreTag(t, { max, fallback: o.fallback }));
    const histogram = new Array<number>(max + 1).fill(0);
    for (const p of parsed) if (p.status === "ok") histogram[p.score]++;
    return {
      scores: parsed.map((p) => p.score),
      outputs: replies.texts,
      statuses: parsed.map((p) => p.status),
      malformed: parsed.filter((p) => p.status === "malformed").length,
      outOfRange: parsed.filter((p) => p.status === "out_of_range").length,
      truncated: replies.stopped.filter((stopped) => !stopped).length,
      histogram,
    };
  }
}
