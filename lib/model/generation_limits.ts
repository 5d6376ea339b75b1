/**
 * Checks that a generation fits before any work starts: every prompt plus the new tokens within
 * the model's positions (max_position_embeddings), and every buffer {@link generate} binds (the
 * KV cache of a layer, the decode logits, the prefill activations, the weights) within the
 * device's largest storage binding. Otherwise a 256-position model silently runs past its
 * positions, a huge prompt runs for minutes, and a too-large buffer fails deep inside WebGPU.
 *
 * @module
 */
import { UserError } from "../util/user_error.ts";
import type { LlamaConfig } from "./config.ts";

/** A generation that cannot run as asked; the message says which limit and what to change. */
export class GenerationLimitError extends UserError {
  override name = "GenerationLimitError";
}

/** The lengths of one generate() call. */
export interface GenerationShape {
  /** Token count of each prompt. */
  promptLengths: readonly number[];
  /** Most new tokens per sequence. */
  maxNewTokens: number;
  /** Rows per prefill chunk (generate's default: 512). */
  prefillChunkRows?: number;
}

function fmtBytes(n: number): string {
  return n >= 2 ** 30
    ? `${(n / 2 ** 30).toFixed(2)} GiB`
    : n >= 2 ** 20
    ? `${(n / 2 ** 20).toFixed(1)} MiB`
    : `${n} bytes`;
}

/** The largest buffers one generate() call allocates and binds, with their sizes in bytes. */
export function generationBuffers(
  c: LlamaConfig,
  s: GenerationShape,
): { what: string; bytes: number }[] {
  const B = s.promptLengths.length;
  const Smax = Math.max(...s.promptLengths) + s.maxNewTokens;
  const total = s.promptLengths.reduce((a, b) => a + b, 0);
  const R = Math.max(B, Math.min(total, s.prefillChunkRows ?? 512));
  const widest = Math.max(c.hiddenSize, c.intermediateSize, c.numHeads * c.headDim);
  return [
    {
      what: `the KV cache of one layer (${B} sequences x ${Smax} positions x ` +
        `${c.numKvHeads} kv heads x ${c.headDim})`,
      bytes: B * Smax * c.numKvHeads * c.headDim * 4,
    },
    { what: `the decode logits (${B} sequences x ${c.vocabSize})`, bytes: B * c.vocabSize * 4 },
    { what: `the prefill activations (${R} rows x ${widest})`, bytes: R * widest * 4 },
  ];
}

/**
 * Throws a {@link GenerationLimitError} unless every prompt plus `maxNewTokens` fits the model's
 * positions and every buffer of the call fits `maxBinding` bytes (the device's
 * maxStorageBufferBindingSize). `weights` (name, bytes) are checked against it too. `where`
 * starts the message (the command or manifest field that asked).
 */
export function checkGenerationFits(
  c: LlamaConfig,
  maxBinding: number,
  s: GenerationShape,
  where: string,
  weights: readonly { name: string; bytes: number }[] = [],
): void {
  if (s.promptLengths.length === 0) return;
  const longest = Math.max(...s.promptLengths);
  const need = longest + s.maxNewTokens;
  if (need > c.maxPositionEmbeddings) {
    throw new GenerationLimitError(
      `${where}: the longest prompt has ${longest} tokens and up to ${s.maxNewTokens} new ` +
        `tokens are asked: ${need} positions, more than the model's ${c.maxPositionEmbeddings} ` +
        `(max_position_embeddings); shorten the prompt or ask for fewer new tokens`,
    );
  }
  for (const w of weights) {
    if (w.bytes > maxBinding) {
      throw new GenerationLimitError(
        `${where}: the model's tensor ${w.name} takes ${fmtBytes(w.bytes)}, more than this ` +
          `device's largest storage binding (${fmtBytes(maxBinding)}): this model does not fit ` +
          "this adapter (`deno task doctor` shows its limits)",
      );
    }
  }
  for (const b of generationBuffers(c, s)) {
    if (b.bytes > maxBinding) {
      throw new GenerationLimitError(
        `${where}: ${b.what} takes ${fmtBytes(b.bytes)}, more than this device's largest ` +
          `storage binding (${fmtBytes(maxBinding)}); generate fewer or shorter sequences at once`,
      );
    }
  }
}
