/**
 * One Llama decoder layer's forward over planned buffers: the code every pass shares.
 *
 * {@link recordLayerForward} serves the training/scoring pass (forward.ts), its recomputation in
 * the backward (backward.ts) and generation (generate.ts), so a token's log-prob in generation is
 * computed by exactly the same kernels in the same order as in training: with row-invariant
 * kernels the bits agree.
 *
 * @module
 */
import type { Gpu } from "../../gpu/device.ts";
import { createBuffer } from "../../gpu/buffers.ts";
import type { Recorder } from "../../gpu/recorder.ts";
import { linearResidual, linearShared } from "./linear.ts";
import { rmsnorm } from "../../gpu/rmsnorm.ts";
import { rope } from "../../gpu/rope.ts";
import { attention } from "../../gpu/attention.ts";
import { swiglu } from "../../gpu/swiglu.ts";
import type { LlamaModel } from "./llama.ts";

/** One layer's activations for `rows` rows (the backward reads them). */
export interface LayerActs {
  /** input_layernorm output [rows, D] and its saved 1/rms [rows]. */
  xn1: GPUBuffer;
  rstd1: GPUBuffer;
  /** RoPE'd queries [rows, H*hd]; keys [rows, G*hd] (RoPE'd); values [rows, G*hd]. */
  q: GPUBuffer;
  k: GPUBuffer;
  v: GPUBuffer;
  /** Attention output [rows, H*hd] and per-(row, head) logsumexp [rows, H]. */
  att: GPUBuffer;
  attLse: GPUBuffer;
  /** Residual after attention [rows, D]. */
  h: GPUBuffer;
  /** post_attention_layernorm output [rows, D] and 1/rms [rows]. */
  xn2: GPUBuffer;
  rstd2: GPUBuffer;
  /** MLP gate, up projections and silu(gate)*up, each [rows, I]. */
  gate: GPUBuffer;
  up: GPUBuffer;
  act: GPUBuffer;
}

/** Allocates one layer's activation buffers for `rows` rows. */
export function allocLayerActs(
  gpu: Gpu,
  model: LlamaModel,
  rows: number,
  label: string,
): LayerActs {
  const c = model.config;
  const D = c.hiddenSize, I = c.intermediateSize;
  const qd = c.numHeads * c.headDim, kd = c.numKvHeads * c.headDim;
  const b = (n: number, what: string) => createBuffer(gpu, rows * n * 4, `${label}.${what}`);
  return {
    xn1: b(D, "xn1"),
    rstd1: b(1, "rstd1"),
    q: b(qd, "q"),
    k: b(kd, "k"),
    v: b(kd, "v"),
    att: b(qd, "att"),
    attLse: b(c.numHeads, "attLse"),
    h: b(D, "h"),
    xn2: b(D, "xn2"),
    rstd2: b(1, "rstd2"),
    gate: b(I, "gate"),
    up: b(I, "up"),
    act: b(I, "act"),
  };
}

/** Where a pass's keys and values live: a KV cache [B, S, G, hd], or the layer's own k/v. */
export interface KvTarget {
  /** Cache buffers for this layer; null in the training pass (k and v are their own cache). */
  kc: GPUBuffer | null;
  vc: GPUBuffer | null;
  /** Positions per sequence in the cache (or the padded length S of the training pass). */
  S: number;
}

/** Parameter name prefix of layer `l`. */
export const layerPrefix = (l: number): string => `model.layers.${l}.`;

/**
 * Records one decoder layer: xOut = layer(xIn) for M rows with sequence ids `seq` and positions
 * `pos` (u32 [M]). With a cache, keys/values are stored at (seq, pos) first and attention reads
 * the cache; in the training layout (kv.kc null) k and v ARE the cache [B, S, G, hd].
 */
export function recordLayerForward(
  rec: Recorder,
  model: LlamaModel,
  l: number,
  xIn: GPUBuffer,
  xOut: GPUBuffer,
  a: LayerActs,
  M: number,
  seq: GPUBuffer,
  pos: GPUBuffer,
  kv: KvTarget,
  kvStoreFn?: (rec: Recorder, k: GPUBuffer, v: GPUBuffer, M: number) => void,
): void {
  const c = model.config;
  const D = c.hiddenSize, I = c.intermediateSize, H = c.numHeads, G = c.numKvHeads;
  const hd = c.headDim;
  const p = layerPrefix(l);
  const w = (n: string) => model.w(p + n);
  // Matrices go through linear.ts, which reads f32 or packed BF16 weights alike.
  rmsnorm(rec, xIn, w("input_layernorm.weight"), a.xn1, a.rstd1, M, D, c.rmsNormEps);
  // q|k|v and gate|up each read one input: one dispatch at decode shapes, the same bits.
  const shared = (x: GPUBuffer, parts: [string, GPUBuffer, number][]) =>
    linearShared(rec, model, parts.map(([n, y, N]) => ({ name: p + n, y, N })), x, M, D);
  shared(a.xn1, [
    ["self_attn.q_proj.weight", a.q, H * hd],
    ["self_attn.k_proj.weight", a.k, G * hd],
    ["self_attn.v_proj.weight", a.v, G * hd],
  ]);
  rope(rec, a.q, a.q, pos, model.invFreq, M, H, hd);
  rope(rec, a.k, a.k, pos, model.invFreq, M, G, hd);
  let kc = a.k, vc = a.v;
  if (kv.kc && kv.vc) {
    if (!kvStoreFn) throw new Error("recordLayerForward: a KV cache needs a store function");
    kvStoreFn(rec, a.k, a.v, M);
    kc = kv.kc;
    vc = kv.vc;
  }
  attention(rec, a.q, kc, vc, seq, pos, a.att, a.attLse, M, H, G, hd, kv.S, 1 / Math.sqrt(hd));
  // h = xIn + o(att) and xOut = h + down(act): residual epilogues, the bits of a copy followed
  // by an accumulating product (which is what they are above the few-row range).
  linearResidual(rec, model, p + "self_attn.o_proj.weight", a.att, xIn, a.h, M, H * hd, D);
  rmsnorm(rec, a.h, w("post_attention_layernorm.weight"), a.xn2, a.rstd2, M, D, c.rmsNormEps);
  shared(a.xn2, [["mlp.gate_proj.weight", a.gate, I], ["mlp.up_proj.weight", a.up, I]]);
  swiglu(rec, a.gate, a.up, a.act, M * I);
  linearResidual(rec, model, p + "mlp.down_proj.weight", a.act, a.h, xOut, M, I, D);
}
