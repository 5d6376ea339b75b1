/**
 * The work a Llama pass must do at least, for turning measured speeds into fractions of an
 * adapter's limits: the flops of a forward per token, and the bytes a decode step must read
 * (every matrix once, the LM head included, plus each sequence's KV cache).
 *
 * @module
 */
import type { LlamaConfig } from "../model/config.ts";

/** Weights of the matrices one token's forward multiplies by (the LM head included). */
export function matrixParams(c: LlamaConfig): number {
  const D = c.hiddenSize, I = c.intermediateSize, hd = c.headDim;
  const perLayer = 2 * D * c.numHeads * hd + 2 * D * c.numKvHeads * hd + 3 * D * I;
  return c.numLayers * perLayer + c.vocabSize * D;
}

/**
 * Flops of one token's forward at context length `ctx` (positions it attends to): 2 per matrix
 * weight, plus 4·H·hd per attended position per layer (q·k and p·v).
 */
export function forwardFlopsPerToken(c: LlamaConfig, ctx: number): number {
  return 2 * matrixParams(c) + 4 * c.numLayers * c.numHeads * c.headDim * ctx;
}

/**
 * Bytes one decode step must read for `batch` sequences at mean context `ctx`: every matrix
 * once (`bytesPerWeight` each: 4 for f32, 2 for BF16), the norm weights, and each sequence's
 * keys and values (f32) of all layers.
 */
export function decodeBytesPerStep(
  c: LlamaConfig,
  batch: number,
  ctx: number,
  bytesPerWeight = 4,
): number {
  const norms = (2 * c.numLayers + 1) * c.hiddenSize * 4;
  const kv = batch * ctx * c.numLayers * 2 * c.numKvHeads * c.headDim * 4;
  return matrixParams(c) * bytesPerWeight + norms + kv;
}
