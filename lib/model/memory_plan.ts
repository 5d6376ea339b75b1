/**
 * Planned GPU bytes of the engine's buffers, by buffer class, computed from a config and the
 * shapes of a run without touching a GPU. Each function mirrors one allocator (weights,
 * `ForwardPass`, its `Backward`, `generate`, `AdamW`); tests/model_memory_plan_test.ts holds
 * every one of them to the bytes the allocator really creates, so a plan cannot drift from the
 * code. Sizes are as allocated: rounded up to 16 bytes (gpu/buffers.ts).
 *
 * @module
 */
import { allocatedBytes } from "../../gpu/buffers.ts";
import { packedBf16Bytes } from "../../gpu/bf16.ts";
import { SumSquaresPlan } from "../../gpu/optimizer.ts";
import { rmsnormDwScratchBytes } from "../../gpu/rmsnorm.ts";
import { expectedTensors, isNormWeight, type LlamaConfig } from "./config.ts";
import { headChunkRowsFor } from "./forward.ts";
import type { WeightStorage } from "./weights.ts";

/** Bytes of one buffer class ("weights", "KV cache", ...) within a plan. */
export interface PlanLine {
  what: string;
  bytes: number;
}

/** Sum of a plan's lines. */
export const planTotal = (lines: readonly PlanLine[]): number =>
  lines.reduce((a, l) => a + l.bytes, 0);

const f32s = (n: number) => allocatedBytes(n * 4);

/** The model's weights in `storage` ("bf16": matrices packed, norm weights f32). */
export function weightBytes(c: LlamaConfig, storage: WeightStorage): number {
  let total = 0;
  for (const [name, shape] of expectedTensors(c)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const packed = storage === "bf16" && !isNormWeight(name);
    total += allocatedBytes(packed ? packedBf16Bytes(n) : n * 4);
  }
  return total;
}

/**
 * The packed-BF16 compute copies of a model trained with precision "bf16" (one per matrix,
 * beside the f32 masters; LlamaModel.usePrecision). 0 in f32.
 */
export function computeCopyBytes(c: LlamaConfig, precision: "f32" | "bf16"): number {
  if (precision === "f32") return 0;
  let total = 0;
  for (const [name, shape] of expectedTensors(c)) {
    if (!isNormWeight(name)) {
      total += allocatedBytes(packedBf16Bytes(shape.reduce((a, b) => a * b, 1)));
    }
  }
  return total;
}

/** One parameter's element count per tensor, in f32 bytes as allocated (gradients, m, v). */
function perTensorF32(c: LlamaConfig): number {
  let total = 0;
  for (const shape of expectedTensors(c).values()) total += f32s(shape.reduce((a, b) => a * b, 1));
  return total;
}

/** AdamW's state: a gradient, m and v per parameter, plus the norm scratch. */
export function optimizerPlan(c: LlamaConfig): PlanLine[] {
  const each = perTensorF32(c);
  const numels = [...expectedTensors(c).values()].map((s) => s.reduce((a, b) => a * b, 1));
  const norm = SumSquaresPlan.bytes(numels);
  return [
    { what: "gradients (f32)", bytes: each },
    { what: "AdamW m, v (f32)", bytes: 2 * each },
    {
      what: "grad-norm partials, scratch and table",
      bytes: allocatedBytes(numels.length * 4) + allocatedBytes(norm.scratch) +
        allocatedBytes(norm.table) + allocatedBytes(16),
    },
  ];
}

/** One layer's activations for `rows` rows (layer.ts allocLayerActs). */
export function layerActsBytes(c: LlamaConfig, rows: number): number {
  const D = c.hiddenSize, I = c.intermediateSize;
  const qd = c.numHeads * c.headDim, kd = c.numKvHeads * c.headDim;
  const per = [D, 1, qd, kd, kd, qd, c.numHeads, D, D, 1, I, I, I];
  return per.reduce((a, n) => a + f32s(rows * n), 0);
}

/** Options of a planned pass (those of `ForwardPass`). */
export interface PassShape {
  B: number;
  S: number;
  recompute?: boolean;
  forwardOnly?: boolean;
  headChunkRows?: number;
}

/**
 * A `ForwardPass` of B x S rows: ids, the residual stream, layer activations, the final norm,
 * the LM-head chunk and per-row outputs (one token-id upload buffer in flight included).
 */
export function forwardPassPlan(c: LlamaConfig, p: PassShape, maxBinding: number): PlanLine[] {
  const M = p.B * p.S, D = c.hiddenSize, V = c.vocabSize, L = c.numLayers;
  const R = headChunkRowsFor(V, M, maxBinding, p.headChunkRows);
  const single = R === M;
  const sets = p.recompute || p.forwardOnly ? 1 : L;
  const residuals = p.forwardOnly ? Math.min(2, L + 1) : L + 1;
  const chunk = f32s(R * V) + (single ? 0 : f32s(R * D) + 4 * f32s(R));
  return [
    // forwardLogprobs keeps two id uploads (tokens, targets) in flight.
    { what: "ids (tokens, targets, seq, pos, 2 uploads)", bytes: 6 * f32s(M) },
    { what: `residual stream (${residuals} x [M, D])`, bytes: residuals * f32s(M * D) },
    {
      what: `layer activations (${sets} set${sets > 1 ? "s" : ""})`,
      bytes: sets * layerActsBytes(c, M),
    },
    { what: "final norm, lse, logp, entropy", bytes: f32s(M * D) + 4 * f32s(M) },
    { what: `LM-head chunk (${R} rows of logits)`, bytes: chunk },
  ];
}

/** The `Backward` scratch of a pass (backward.ts allocScratch). */
export function backwardPlan(c: LlamaConfig, p: PassShape, maxBinding: number): PlanLine[] {
  const M = p.B * p.S, D = c.hiddenSize, I = c.intermediateSize, V = c.vocabSize;
  const qd = c.numHeads * c.headDim, kd = c.numKvHeads * c.headDim;
  const R = headChunkRowsFor(V, M, maxBinding, p.headChunkRows);
  const single = R === M;
  const dwPartials = rmsnormDwScratchBytes(M, D);
  return [
    {
      what: "backward scratch (residual, norm, MLP, attention gradients)",
      bytes: 2 * f32s(M * D) + 3 * f32s(M * I) + 2 * f32s(M * qd) + 2 * f32s(M * kd),
    },
    {
      what: `backward LM-head chunk (${R} rows of logit gradients)`,
      bytes: f32s(R * V) + (single ? 2 * f32s(1) : f32s(R) + f32s(R * D)),
    },
    // Past one chunk of rows the RMSNorm weight gradient sums per-chunk partials (per device).
    ...(dwPartials > 0
      ? [{ what: "RMSNorm weight-gradient partials [chunks, D]", bytes: f32s(dwPartials / 4) }]
      : []),
  ];
}

/** The buffers of one `generate` call (generate.ts GenBuffers plus the prefill's uploads). */
export function generationPlan(
  c: LlamaConfig,
  g: {
    batch: number;
    /** Longest prompt, and all prompt tokens of the batch together. */
    maxPromptLen: number;
    promptTokens: number;
    maxNewTokens: number;
    readbackEvery?: number;
    prefillChunkRows?: number;
  },
): PlanLine[] {
  const B = g.batch, D = c.hiddenSize, V = c.vocabSize, L = c.numLayers;
  const K = g.readbackEvery ?? 8;
  const Smax = g.maxPromptLen + g.maxNewTokens;
  const R = Math.max(B, Math.min(g.promptTokens, g.prefillChunkRows ?? 512));
  const kvRow = c.numKvHeads * c.headDim;
  // Each prefill chunk uploads its tokens, sequence ids and positions; all live until the
  // first readback.
  let prefillUploads = 0;
  for (let r0 = 0; r0 < g.promptTokens; r0 += R) {
    prefillUploads += 3 * f32s(Math.min(R, g.promptTokens - r0));
  }
  return [
    {
      what: `KV cache (${L} layers x 2 x [${B}, ${Smax}] positions)`,
      bytes: 2 * L * f32s(B * Smax * kvRow),
    },
    {
      what: `layer activations (${R} rows) and residuals`,
      bytes: layerActsBytes(c, R) + 2 * f32s(R * D),
    },
    {
      what: "head: last rows, final norm, logits, sampling",
      bytes: 2 * f32s(B * D) + f32s(B * V) + 8 * f32s(B) + 2 * f32s(K * B),
    },
    { what: "prefill uploads (token ids, sequence ids, positions)", bytes: prefillUploads },
  ];
}
