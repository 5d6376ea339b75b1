/**
 * Completions of a causal LM for many prompts through the engine's generate() (KV cache, GPU
 * sampling), in batches: token prompts with every sampled token and its log-prob (what RL trains
 * on), or chat conversations rendered with the model's chat template plus the generation prompt
 * (what evaluation and the judges read). Replies are decoded without the stop token.
 *
 * Prompt i always samples with RNG row id i, so a completion does not depend on the batch size
 * or on which other prompts share its batch.
 *
 * @module
 */
import { generate } from "./generate.ts";
import type { LlamaModel } from "./llama.ts";
import type { ChatMessage, ChatTokenizer } from "./tokenizer.ts";

/** Sampling and batching of {@link sampleCompletions} and {@link generateReplies}. */
export interface ReplyOptions {
  /** 0 = greedy; otherwise softmax(logits / temperature) sampling. */
  temperature: number;
  /** Nucleus mass (default 1: none). */
  topP?: number;
  maxNewTokens: number;
  seed: number;
  /** RNG stream (default 0); give policy and base the same stream for paired sampling noise. */
  stream?: number;
  /** Prompts per generate() call (default 8). */
  batchSize?: number;
}

/** One sampled completion. */
export interface Completion {
  /** The prompt's token ids. */
  prompt: number[];
  /** Generated token ids (the stop token included when the completion stopped). */
  tokens: number[];
  /** Log-prob of each generated token under the model (temperature 1). */
  logprobs: number[];
  /** True when it ended on a stop id, false when it hit maxNewTokens. */
  stopped: boolean;
  /** Decoded text, stop token removed, special tokens skipped. */
  text: string;
}

/** Refuses options generate() cannot honour and prompts that would not fit the model. */
function checkRequest(
  model: LlamaModel,
  prompts: readonly number[][],
  opts: ReplyOptions,
  noun: string,
): number {
  const batchSize = opts.batchSize ?? 8;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new Error(`generateReplies: batchSize must be an integer >= 1, got ${batchSize}`);
  }
  if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 1) {
    throw new Error(
      `generateReplies: maxNewTokens must be an integer >= 1, got ${opts.maxNewTokens}`,
    );
  }
  const limit = model.config.maxPositionEmbeddings;
  prompts.forEach((p, i) => {
    if (p.length + opts.maxNewTokens > limit) {
      throw new Error(
        `${noun} ${i} has ${p.length} prompt tokens; with maxNewTokens ${opts.maxNewTokens} ` +
          `that exceeds the model's ${limit} positions`,
      );
    }
  });
  return batchSize;
}

async function complete(
  model: LlamaModel,
  tokenizer: ChatTokenizer,
  prompts: number[][],
  opts: ReplyOptions,
  noun: string,
): Promise<Completion[]> {
  const batchSize = checkRequest(model, prompts, opts, noun);
  const out: Completion[] = [];
  for (let i0 = 0; i0 < prompts.length; i0 += batchSize) {
    const batch = prompts.slice(i0, i0 + batchSize);
    const r = await generate(model, batch, {
      maxNewTokens: opts.maxNewTokens,
      temperature: opts.temperature,
      topP: opts.topP ?? 1,
      seed: opts.seed,
      stream: opts.stream ?? 0,
      stopIds: tokenizer.stopIds,
      rowIds: batch.map((_, k) => i0 + k),
    });
    batch.forEach((prompt, k) => {
      const tokens = r.tokens[k];
      const body = r.stopped[k] ? tokens.slice(0, -1) : tokens;
      out.push({
        prompt,
        tokens,
        logprobs: r.logprobs[k],
        stopped: r.stopped[k],
        text: tokenizer.decode(body, { skipSpecialTokens: true }),
      });
    });
  }
  return out;
}

/** Samples one completion per token prompt (row id = its index); see the module doc. */
export function sampleCompletions(
  model: LlamaModel,
  tokenizer: ChatTokenizer,
  prompts: number[][],
  opts: ReplyOptions,
): Promise<Completion[]> {
  return complete(model, tokenizer, prompts, opts, "prompt");
}

/** The replies to conversations, with what a report needs about them. */
export interface Replies {
  /** Decoded replies, stop token removed, special tokens skipped. */
  texts: string[];
  /** Generated token ids (stop token included when the reply stopped). */
  tokens: number[][];
  /** True when the reply ended on a stop id, false when it hit maxNewTokens. */
  stopped: boolean[];
  /** Prompt lengths in tokens. */
  promptTokens: number[];
}

/** Generates one assistant reply per conversation; see the module doc. */
export async function generateReplies(
  model: LlamaModel,
  tokenizer: ChatTokenizer,
  conversations: readonly ChatMessage[][],
  opts: ReplyOptions,
): Promise<Replies> {
  const prompts = conversations.map((c) => tokenizer.encodeChat(c, { addGenerationPrompt: true }));
  const done = await complete(model, tokenizer, prompts, opts, "conversation");
  return {
    texts: done.map((c) => c.text),
    tokens: done.map((c) => c.tokens),
    stopped: done.map((c) => c.stopped),
    promptTokens: done.map((c) => c.prompt.length),
  };
}
