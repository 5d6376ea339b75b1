/**
 * The `model` task reward: an HF LlamaForSequenceClassification reward model (e.g.
 * Skywork-Reward-V2-Llama-3.2-3B) run on our engine.
 *
 * A (query, answer) pair is rendered with the reward model's OWN chat template as
 * [user: query, assistant: answer] without a generation prompt, and the score is `score.weight`
 * applied to the final-normed hidden state at the last real token of that sequence (HF reads
 * the last non-padding token the same way). Pairs are scored in batches padded to the batch's
 * longest sequence; with causal attention and row-invariant kernels, the padding (and what else
 * is in the batch) cannot change a sequence's score, so pairs are sorted by length to waste less
 * work on padding and the result is the same bits as scoring each pair alone.
 *
 * Over-long pairs are truncated to `maxTokens`: the first `maxTokens - 1` tokens plus the final
 * token (the template's end-of-turn token, the one the score is read at), with a counted
 * warning. Keeping that last token keeps the score read where the model was trained to read it.
 *
 * @module
 */
import { UserError } from "../util/user_error.ts";
import type { Gpu } from "../../gpu/device.ts";
import { Recorder } from "../../gpu/recorder.ts";
import { LlamaModel } from "../model/llama.ts";
import { ForwardPass } from "../model/forward.ts";
import { frozenLoadOptions, type WeightStorageChoice } from "../model/weights.ts";
import { type ChatTokenizer, loadTokenizer } from "../model/tokenizer.ts";
import type { RewardItem, TaskReward } from "./reward.ts";

/** Options of a {@link RewardModel}. */
export interface RewardModelOptions {
  /** Pairs per forward pass (default 4). */
  batchSize?: number;
  /** Longest scored sequence in tokens; longer pairs are truncated (default 2048). */
  maxTokens?: number;
  /** Where truncation warnings go (default console.warn). */
  onWarning?: (message: string) => void;
  /**
   * Weight storage for {@link RewardModel.load} (default "auto": BF16 checkpoints stay 16-bit,
   * exact; see frozenLoadOptions). The reward model is frozen, so BF16 costs nothing in bits.
   */
  storage?: WeightStorageChoice;
}

/** Counters over a reward model's life. */
export interface RewardModelStats {
  /** Pairs scored. */
  scored: number;
  /** Pairs that were longer than maxTokens and truncated. */
  truncated: number;
  /** Forward passes run. */
  batches: number;
  /** Tokens fed, padding included (the work done). */
  paddedTokens: number;
}

const DEFAULT_MAX_TOKENS = 2048;

/** The reward model the paper used, named in the error when a directory is missing. */
export const PAPER_REWARD_MODEL = "Skywork/Skywork-Reward-V2-Llama-3.2-3B";

/** Fails with what to download and where when `dir` is not an HF reward model directory. */
async function requireModelFiles(dir: string): Promise<void> {
  const missing: string[] = [];
  for (const f of ["config.json", "tokenizer.json"]) {
    try {
      await Deno.stat(`${dir}/${f}`);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      missing.push(f);
    }
  }
  if (missing.length > 0) {
    throw new UserError(
      `reward model: ${dir} has no ${missing.join(" or ")}. Download an HF ` +
        `LlamaForSequenceClassification reward model there, e.g. the paper's ` +
        `(huggingface-cli download ${PAPER_REWARD_MODEL} --local-dir ${dir})`,
    );
  }
}

/** A LlamaForSequenceClassification reward model with its tokenizer; see the module doc. */
export class RewardModel implements TaskReward {
  readonly name = "model";
  readonly model: LlamaModel;
  readonly tokenizer: ChatTokenizer;
  readonly batchSize: number;
  readonly maxTokens: number;
  readonly stats: RewardModelStats = { scored: 0, truncated: 0, batches: 0, paddedTokens: 0 };
  #warn: (message: string) => void;
  #source: string;

  /**
   * Wraps a loaded sequence-classification model and its tokenizer. `source` names the model
   * in errors and warnings (its directory when loaded from disk).
   */
  constructor(
    model: LlamaModel,
    tokenizer: ChatTokenizer,
    opts: RewardModelOptions = {},
    source = "reward model",
  ) {
    const c = model.config;
    this.#source = source;
    if (c.architecture !== "LlamaForSequenceClassification") {
      throw new UserError(
        `${source}/config.json: architectures must be ["LlamaForSequenceClassification"] for a ` +
          `reward model, got ${c.architecture}`,
      );
    }
    if (c.numLabels !== 1) {
      throw new UserError(
        `${source}: score.weight must have 1 row (num_labels = 1) for a scalar reward, ` +
          `got num_labels = ${c.numLabels}`,
      );
    }
    if (tokenizer.chatTemplate === null) {
      throw new UserError(
        `${source}/tokenizer_config.json: no chat_template; the reward model scores ` +
          `chat-formatted (user, assistant) pairs with its own template`,
      );
    }
    const batchSize = opts.batchSize ?? 4;
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new UserError(`${source}: batchSize must be an integer >= 1, got ${batchSize}`);
    }
    const maxTokens = opts.maxTokens ?? Math.min(DEFAULT_MAX_TOKENS, c.maxPositionEmbeddings);
    if (!Number.isInteger(maxTokens) || maxTokens < 2 || maxTokens > c.maxPositionEmbeddings) {
      throw new UserError(
        `${source}: maxTokens must be an integer in 2..${c.maxPositionEmbeddings} ` +
          `(max_position_embeddings), got ${maxTokens}`,
      );
    }
    this.model = model;
    this.tokenizer = tokenizer;
    this.batchSize = batchSize;
    this.maxTokens = maxTokens;
    this.#warn = opts.onWarning ?? ((m) => console.warn(m));
  }

  /** Loads config.json, the safetensors weights and the tokenizer of an HF reward model dir. */
  static async load(gpu: Gpu, dir: string, opts: RewardModelOptions = {}): Promise<RewardModel> {
    await requireModelFiles(dir);
    // The tokenizer first: it is cheap, and a missing template should fail before GBs load.
    const tokenizer = await loadTokenizer(dir);
    const model = await LlamaModel.load(gpu, dir, frozenLoadOptions(opts.storage ?? "auto"));
    return new RewardModel(model, tokenizer, opts, dir);
  }

  /** Frees the model's weights; scoring afterwards is an error. */
  release(): void {
    this.model.destroy();
  }

  /** The token ids of one pair (untruncated): the chat template, no generation prompt. */
  encodePair(item: RewardItem): number[] {
    return this.tokenizer.encodeChat(
      [{ role: "user", content: item.query }, { role: "assistant", content: item.answer }],
      { addGenerationPrompt: false },
    );
  }

  /** Cuts an over-long sequence to maxTokens, keeping its final token (see the module doc). */
  truncate(ids: number[]): { ids: number[]; truncated: boolean } {
    if (ids.length <= this.maxTokens) return { ids, truncated: false };
    return { ids: [...ids.slice(0, this.maxTokens - 1), ids[ids.length - 1]], truncated: true };
  }

  /** Scores every (query, answer) pair; see the module doc. */
  score(items: readonly RewardItem[]): Promise<number[]> {
    const seqs: number[][] = [];
    let cut = 0, longest = 0;
    for (const item of items) {
      const full = this.encodePair(item);
      const t = this.truncate(full);
      if (t.truncated) {
        cut++;
        longest = Math.max(longest, full.length);
      }
      seqs.push(t.ids);
    }
    if (cut > 0) {
      this.stats.truncated += cut;
      this.#warn(
        `${this.#source}: truncated ${cut} of ${items.length} pairs longer than ${this.maxTokens} ` +
          `tokens (longest ${longest}); ${this.stats.truncated} truncated so far`,
      );
    }
    return this.scoreTokens(seqs);
  }

  /**
   * Scores token sequences directly (each already in the chat format and at most maxTokens
   * long): the score head at each sequence's last token. Batched, shortest first.
   */
  async scoreTokens(seqs: readonly number[][]): Promise<number[]> {
    const V = this.model.config.vocabSize;
    seqs.forEach((s, i) => {
      if (s.length === 0) throw new Error(`${this.#source}: sequence ${i} is empty`);
      if (s.length > this.maxTokens) {
        throw new Error(
          `${this.#source}: sequence ${i} has ${s.length} tokens, more than maxTokens ` +
            `${this.maxTokens}`,
        );
      }
      s.forEach((t, j) => {
        if (!Number.isInteger(t) || t < 0 || t >= V) {
          throw new Error(
            `${this.#source}: sequence ${i} token ${j} = ${t} is outside 0..${V - 1}`,
          );
        }
      });
    });
    // Stable sort by length: batches of similar lengths pad less; results do not depend on it.
    const order = seqs.map((_, i) => i).sort((a, b) => seqs[a].length - seqs[b].length || a - b);
    const out = new Array<number>(seqs.length);
    for (let i0 = 0; i0 < order.length; i0 += this.batchSize) {
      const idx = order.slice(i0, i0 + this.batchSize);
      const scores = await this.#scoreBatch(idx.map((i) => seqs[i]));
      idx.forEach((i, k) => (out[i] = scores[k]));
    }
    this.stats.scored += seqs.length;
    return out;
  }

  /** One forward pass over B sequences padded to the longest; reads row b*S + len_b - 1. */
  async #scoreBatch(batch: number[][]): Promise<Float32Array> {
    const B = batch.length, S = Math.max(...batch.map((s) => s.length));
    // The filler only occupies positions after each sequence's end, which causal attention never
    // lets the scored row see; any valid id will do (some tokenizers' pad id is past the vocab).
    const pad = this.tokenizer.padId;
    const tokens = new Uint32Array(B * S).fill(pad < this.model.config.vocabSize ? pad : 0);
    const rows: number[] = [];
    batch.forEach((s, b) => {
      tokens.set(s, b * S);
      rows.push(b * S + s.length - 1);
    });
    // forwardOnly: one layer's activations and two residual buffers instead of L and L+1;
    // one-row head chunks: a reward model has no LM head, so the pass's [rows, vocab] logits
    // buffer would be dead weight.
    const pass = new ForwardPass(this.model, B, S, { forwardOnly: true, headChunkRows: 1 });
    try {
      const rec = new Recorder(this.model.gpu);
      const scores = pass.forwardScores(rec, tokens, rows);
      const read = rec.read(scores, 0, B * 4);
      await rec.submit();
      const result = new Float32Array(await read);
      scores.destroy();
      this.stats.batches++;
      this.stats.paddedTokens += B * S;
      return result;
    } finally {
      pass.destroy();
    }
  }
}
