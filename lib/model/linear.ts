/**
 * The weight-reading ops of a pass, dispatched by how the weight is stored: f32 weights use
 * `matmul` / `embedding`, packed BF16 weights (frozen models, and the compute copies of a model
 * trained with precision "bf16") `matmulBf16W` / `embeddingBf16`, and the input gradient
 * `matmulGradInput` in the weight's format.
 * Both kernels of a pair share their WGSL and reduction order, so a BF16-stored model gives the
 * same bits as the same weights widened to f32.
 *
 * @module
 */
import type { Recorder } from "../../gpu/recorder.ts";
import {
  matmul,
  matmulBf16W,
  matmulGradInput,
  matmulResidual,
  matmulShared,
} from "../../gpu/matmul.ts";
import { embedding, embeddingBf16 } from "../../gpu/embedding.ts";
import type { LlamaModel } from "./llama.ts";

/** y[M,N] (+)= x[M,K] · W[N,K]ᵀ for the model's weight `name`, in its storage. Records only. */
export function linear(
  rec: Recorder,
  model: LlamaModel,
  name: string,
  x: GPUBuffer,
  y: GPUBuffer,
  M: number,
  K: number,
  N: number,
  accumulate = false,
): void {
  const mm = model.isBf16(name) ? matmulBf16W : matmul;
  mm(rec, x, model.w(name), y, M, K, N, accumulate);
}

/**
 * y_i[M,N_i] = x[M,K] · W_i[N_i,K]ᵀ for 2 or 3 of the model's weights that read the same input
 * (q|k|v, gate|up): one dispatch at decode shapes on a GPU (gpu/matmul_rows_shared.ts), the
 * separate products otherwise; the bits of {@link linear} on each. Records only.
 */
export function linearShared(
  rec: Recorder,
  model: LlamaModel,
  parts: { name: string; y: GPUBuffer; N: number }[],
  x: GPUBuffer,
  M: number,
  K: number,
): void {
  const formats = new Set(parts.map((p) => model.isBf16(p.name)));
  if (formats.size > 1) {
    for (const p of parts) linear(rec, model, p.name, x, p.y, M, K, p.N);
    return;
  }
  const format = model.isBf16(parts[0].name) ? "bf16" : "f32";
  matmulShared(rec, x, parts.map((p) => ({ w: model.w(p.name), y: p.y, N: p.N })), M, K, format);
}

/**
 * y[M,N] = r[M,N] + x[M,K] · W[N,K]ᵀ for the model's weight `name` (a residual add fused into
 * the product: the bits of copying r into y and accumulating). Records only.
 */
export function linearResidual(
  rec: Recorder,
  model: LlamaModel,
  name: string,
  x: GPUBuffer,
  r: GPUBuffer,
  y: GPUBuffer,
  M: number,
  K: number,
  N: number,
): void {
  matmulResidual(rec, x, model.w(name), r, y, M, K, N, model.isBf16(name) ? "bf16" : "f32");
}

/**
 * The input gradient through the model's weight `name`: dx[M,K] (+)= dy[M,N] · W[N,K], W in its
 * storage (the packed compute copy under precision "bf16"). Records only.
 */
export function linearGradInput(
  rec: Recorder,
  model: LlamaModel,
  name: string,
  dy: GPUBuffer,
  dx: GPUBuffer,
  M: number,
  K: number,
  N: number,
  accumulate = false,
): void {
  const format = model.isBf16(name) ? "bf16" : "f32";
  matmulGradInput(rec, dy, model.w(name), dx, M, K, N, accumulate, format);
}

/** y[t,:] = embed_tokens[tokens[t],:] for T token ids (u32), in the table's storage. */
export function embedTokens(
  rec: Recorder,
  model: LlamaModel,
  tokens: GPUBuffer,
  y: GPUBuffer,
  T: number,
): void {
  const name = "model.embed_tokens.weight";
  const gather = model.isBf16(name) ? embeddingBf16 : embedding;
  gather(rec, tokens, model.w(name), y, T, model.config.hiddenSize);
}
