/**
 * The quality self-reward R_Q of LSP (LSP.md, "LSP-Zero vs LSP"): the frozen reference model acts
 * as a judge. It is shown the judge prompt with `{instruction}` (the query) and `{response}` (the
 * answer) filled, writes its grading, and ends with the total between score tags.
 *
 * Score parsing is strict and its fallback is defined: the LAST `<score>N</score>` counts, N
 * must be a whole number in 0..max; a missing tag or a non-integer is "malformed", an integer
 * outside the range is "out_of_range", and both score `fallback` (a manifest knob, default 0)
 * and are counted, so a judge that stops following the format shows up in the metrics instead
 * of silently shifting rewards.
 *
 * @module
 */
import { generateReplies } from "../model/chat_replies.ts";
import type { LlamaModel } from "../model/llama.ts";
import type { ChatTokenizer } from "../model/tokenizer.ts";
import type { RewardItem } from "../rewards/reward.ts";
import { judgeConversation } from "./conversations.ts";

/** How a judge output was read. */
export type ScoreStatus = "ok" | "malformed" | "out_of_range";

/** A parsed judge score; `score` is the fallback unless `status` is "ok". */
export interface ParsedScore {
  score: number;
  status: ScoreStatus;
}

/** Range and fallback of {@link parseSelfRewardScore}. */
export interface ScoreParseOptions {
  /** Highest valid score (default 7: the paper's seven criteria). */
  max?: number;
  /** Score given to malformed and out-of-range outputs (default 0). */
  fallback?: number;
}

/** Reads the judge's total from its output; see the module doc for the rules. */
export function parseSelfRewardScore(text: string, opts: ScoreParseOptions = {}): ParsedScore {
  const max = opts.max ?? 7;
  const fallback = opts.fallback ?? 0;
  const tags = [...text.matchAll(/<score>([^<]*)<\/score>/g)];
  if (tags.length === 0) return { score: fallback, status: "malformed" };
  const inner = tags[tags.length - 1][1].trim();
  if (!/^[+-]?\d+$/.test(inner)) return { score: fallback, status: "malformed" };
  const n = Number(inner);
  if (n < 0 || n > max) return { score: fallback, status: "out_of_range" };
  return { score: n, status: "ok" };
}

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
}

/** R_Q(q, a) from the frozen reference model acting as the judge. */
export class SelfRewardJudge {
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
    const parsed = replies.texts.map((t) =>
      parseSelfRewardScore(t, { max: o.max, fallback: o.fallback })
    );
    return {
      scores: parsed.map((p) => p.score),
      outputs: replies.texts,
      statuses: parsed.map((p) => p.status),
      malformed: parsed.filter((p) => p.status === "malformed").length,
      outOfRange: parsed.filter((p) => p.status === "out_of_range").length,
    };
  }
}
