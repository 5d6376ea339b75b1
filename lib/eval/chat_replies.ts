/**
 * Assistant replies of a causal LM to chat conversations, for evaluation: each conversation is
 * rendered with the model's chat template plus the generation prompt, generated in batches with
 * the engine's generate() (KV cache, GPU sampling), and decoded without the stop token.
 *
 * Conversation i always samples with RNG row id i, so a reply does not depend on the batch size
 * or on which other conversations share its batch.
 *
 * @module
 */
import { generate } from "../model/generate.ts";
import type { LlamaModel } from "../model/llama.ts";
import type { ChatMessage, ChatTokenizer } from "../model/tokenizer.ts";

/** Sampling and batching of {@link generateReplies}. */
export interface ReplyOptions {
  /** 0 = greedy; otherwise softmax(logits / temperature) sampling. */
  temperature: number;
  /** Nucleus mass (default 1: none). */
  topP?: number;
  maxNewTokens: number;
  seed: number;
  /** RNG stream (default 0); give policy and base the same stream for paired sampling noise. */
  stream?: number;
  /** Conversations per generate() call (default 8). */
  batchSize?: number;
}

/** The replies, with what a report needs about them. */
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
  const prompts = conversations.map((c, i) => {
    const ids = tokenizer.encodeChat(c, { addGenerationPrompt: true });
    if (ids.length + opts.maxNewTokens > limit) {
      throw new Error(
        `generateReplies: conversation ${i} has ${ids.length} prompt tokens; with maxNewTokens ` +
          `${opts.maxNewTokens} that exceeds the model's ${limit} positions`,
      );
    }
    return ids;
  });
  const stopIds = tokenizer.stopIds;
  const out: Replies = { texts: [], tokens: [], stopped: [], promptTokens: [] };
  for (let i0 = 0; i0 < prompts.length; i0 += batchSize) {
    const batch = prompts.slice(i0, i0 + batchSize);
    const r = await generate(model, batch, {
      maxNewTokens: opts.maxNewTokens,
      temperature: opts.temperature,
      topP: opts.topP ?? 1,
      seed: opts.seed,
      stream: opts.stream ?? 0,
      stopIds,
      rowIds: batch.map((_, k) => i0 + k),
    });
    batch.forEach((p, k) => {
      const ids = r.tokens[k];
      const body = r.stopped[k] ? ids.slice(0, -1) : ids;
      out.texts.push(tokenizer.decode(body, { skipSpecialTokens: true }));
      out.tokens.push(ids);
      out.stopped.push(r.stopped[k]);
      out.promptTokens.push(p.length);
    });
  }
  return out;
}
