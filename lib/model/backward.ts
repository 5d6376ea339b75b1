/**
 * The Llama backward pass: every layer's backward in reverse over the activations a
 * {@link ForwardPass} planned, accumulating each parameter's gradient under its HF name.
 *
 * The loss is Σ_m dlogp[m] · logp[m] (dlogp is its gradient w.r.t. the token log-probs; callers
 * build it from advantages, KL terms or an NLL mean). Residual-stream gradients flow through one
 * buffer `dres` that each norm backward accumulates into, which is exactly the identity
 * backward of the residual adds. With `recompute`, each layer's activations are recomputed from
 * its stored input just before its backward (same kernels, so the same bits).
 *
 * {@link Backward} owns the gradient scratch of one pass; a {@link ForwardPass} keeps one and
 * exposes it as `ForwardPass.backward`.
 *
 * @module
 */
import { createBuffer } from "../../gpu/buffers.ts";
import type { Recorder } from "../../gpu/recorder.ts";
import { matmulGradWeight } from "../../gpu/matmul.ts";
import { linear, linearGradInput } from "./linear.ts";
import { embeddingBackward } from "../../gpu/embedding.ts";
import { rmsnormBackward } from "../../gpu/rmsnorm.ts";
import { ropeBackward } from "../../gpu/rope.ts";
import { attentionBackward } from "../../gpu/attention.ts";
import { swigluBackward } from "../../gpu/swiglu.ts";
import { tokenLogprobsBackward } from "../../gpu/logprobs.ts";
import type { Weights } from "./weights.ts";
import type { LlamaModel } from "./llama.ts";
import { type LayerActs, layerPrefix } from "./layer.ts";

/**
 * What the backward reads of the forward pass it reverses. A {@link ForwardPass} is one; the
 * interface keeps this module from importing forward.ts (which imports this one).
 */
export interface BackwardInput {
  readonly model: LlamaModel;
  readonly B: number;
  readonly S: number;
  readonly M: number;
  readonly recompute: boolean;
  readonly chunkRows: number;
  readonly nChunks: number;
  readonly pos: GPUBuffer;
  readonly xs: GPUBuffer[];
  readonly rstdF: GPUBuffer;
  readonly lse: GPUBuffer;
  readonly chunk: { xf: GPUBuffer; targets: GPUBuffer; logits: GPUBuffer; lse: GPUBuffer };
  readonly tokensHost: Uint32Array | null;
  actsOf(l: number): LayerActs;
  recordLayer(rec: Recorder, l: number): void;
  headChunkInput(rec: Recorder, r0: number, n: number): void;
}

/** Gradient scratch buffers of one pass shape. */
interface Scratch {
  dres: GPUBuffer; // residual-stream gradient [M, D]
  dxn: GPUBuffer; // gradient into a norm's output [M, D]
  dact: GPUBuffer; // [M, I]
  dgate: GPUBuffer;
  dup: GPUBuffer;
  datt: GPUBuffer; // [M, H*hd]
  dq: GPUBuffer;
  dk: GPUBuffer; // [M, G*hd] = [B, S, G, hd]
  dv: GPUBuffer;
  dlogits: GPUBuffer; // [chunk, V]
  dlogp: GPUBuffer; // [chunk]
  dxf: GPUBuffer; // [chunk, D]
}

/**
 * The backward of one forward pass and the owner of its gradient scratch buffers, which are
 * allocated on the first {@link Backward.record} (a pass used only forward never pays for them)
 * and freed by {@link Backward.destroy}.
 */
export class Backward {
  readonly pass: BackwardInput;
  #scratch: Scratch | null = null;

  constructor(pass: BackwardInput) {
    this.pass = pass;
  }

  /**
   * Records the backward of loss = Σ_m dlogp[m] * logp[m] for the activations of the pass's
   * last forwardLogprobs, accumulating every parameter's gradient into `grads` (HF names; the
   * caller zeroes them). Tied embeddings get both contributions.
   */
  record(rec: Recorder, dlogp: GPUBuffer, grads: Weights): void {
    recordBackward(this.pass, this.#scratch ??= allocScratch(this.pass), rec, dlogp, grads);
  }

  /** Frees the scratch buffers (after the last submission that uses them). */
  destroy(): void {
    if (!this.#scratch) return;
    for (const b of Object.values(this.#scratch)) b.destroy();
    this.#scratch = null;
  }
}

function allocScratch(pass: BackwardInput): Scratch {
  const c = pass.model.config, gpu = pass.model.gpu, M = pass.M, R = pass.chunkRows;
  const D = c.hiddenSize, I = c.intermediateSize;
  const qd = c.numHeads * c.headDim, kd = c.numKvHeads * c.headDim;
  const b = (n: number, what: string) => createBuffer(gpu, n * 4, `backward.${what}`);
  const single = pass.nChunks === 1;
  return {
    dres: b(M * D, "dres"),
    dxn: b(M * D, "dxn"),
    dact: b(M * I, "dact"),
    dgate: b(M * I, "dgate"),
    dup: b(M * I, "dup"),
    datt: b(M * qd, "datt"),
    dq: b(M * qd, "dq"),
    dk: b(M * kd, "dk"),
    dv: b(M * kd, "dv"),
    dlogits: b(R * c.vocabSize, "dlogits"),
    dlogp: single ? b(1, "dlogp.unused") : b(R, "dlogp"),
    dxf: single ? b(1, "dxf.unused") : b(R * D, "dxf"),
  };
}

function grad(grads: Weights, name: string): GPUBuffer {
  const g = grads.get(name);
  if (!g) throw new Error(`backward: no gradient buffer for ${name}`);
  return g;
}

/** Records the backward of the last forwardLogprobs of `pass` into `s`'s buffers. */
function recordBackward(
  pass: BackwardInput,
  s: Scratch,
  rec: Recorder,
  dlogp: GPUBuffer,
  grads: Weights,
): void {
  const model = pass.model, c = model.config, M = pass.M;
  const D = c.hiddenSize, V = c.vocabSize, L = c.numLayers;
  if (!pass.tokensHost) throw new Error("backward: run forwardLogprobs on this pass first");
  if (dlogp.size < M * 4) {
    throw new Error(`backward: dlogp holds ${dlogp.size / 4} floats, want ${M}`);
  }
  const ch = pass.chunk;

  // LM head and log-softmax, chunk by chunk; dxf (the final norm's output gradient) into dxn.
  const single = pass.nChunks === 1;
  for (let r0 = 0; r0 < M; r0 += pass.chunkRows) {
    const n = Math.min(pass.chunkRows, M - r0);
    let dlogpC = dlogp, dxfC = s.dxn;
    if (!single) {
      // The forward kept only the last chunk's logits: recompute this chunk's.
      pass.headChunkInput(rec, r0, n);
      linear(rec, model, model.headName, ch.xf, ch.logits, n, D, V);
      rec.copy(pass.lse, r0 * 4, ch.lse, 0, n * 4);
      rec.copy(dlogp, r0 * 4, s.dlogp, 0, n * 4);
      dlogpC = s.dlogp;
      dxfC = s.dxf;
    }
    tokenLogprobsBackward(rec, ch.logits, ch.lse, ch.targets, dlogpC, s.dlogits, n, V);
    linearGradInput(rec, model, model.headName, s.dlogits, dxfC, n, D, V);
    matmulGradWeight(rec, s.dlogits, ch.xf, grad(grads, model.headName), n, D, V, true);
    if (!single) rec.copy(s.dxf, 0, s.dxn, r0 * D * 4, n * D * 4);
  }
  rmsnormBackward(
    rec,
    s.dxn,
    pass.xs[L],
    model.w("model.norm.weight"),
    pass.rstdF,
    s.dres,
    grad(grads, "model.norm.weight"),
    M,
    D,
    false,
  );
  for (let l = L - 1; l >= 0; l--) {
    if (pass.recompute) pass.recordLayer(rec, l);
    recordLayerBackward(pass, rec, l, s, grads);
  }
  embeddingBackward(rec, pass.tokensHost, s.dres, grad(grads, "model.embed_tokens.weight"), M, D);
}

/** Layer l's backward: on entry s.dres = dL/d(layer output); on exit dL/d(layer input). */
function recordLayerBackward(
  pass: BackwardInput,
  rec: Recorder,
  l: number,
  s: Scratch,
  grads: Weights,
): void {
  const model = pass.model, c = model.config, M = pass.M;
  const D = c.hiddenSize, I = c.intermediateSize, H = c.numHeads, G = c.numKvHeads;
  const hd = c.headDim;
  const a = pass.actsOf(l);
  const p = layerPrefix(l);
  const w = (n: string) => model.w(p + n);
  const g = (n: string) => grad(grads, p + n);

  // MLP: out = h + down(silu(gate(xn2)) * up(xn2)).
  linearGradInput(rec, model, p + "mlp.down_proj.weight", s.dres, s.dact, M, I, D);
  matmulGradWeight(rec, s.dres, a.act, g("mlp.down_proj.weight"), M, I, D, true);
  swigluBackward(rec, s.dact, a.gate, a.up, s.dgate, s.dup, M * I);
  linearGradInput(rec, model, p + "mlp.gate_proj.weight", s.dgate, s.dxn, M, D, I);
  linearGradInput(rec, model, p + "mlp.up_proj.weight", s.dup, s.dxn, M, D, I, true);
  matmulGradWeight(rec, s.dgate, a.xn2, g("mlp.gate_proj.weight"), M, D, I, true);
  matmulGradWeight(rec, s.dup, a.xn2, g("mlp.up_proj.weight"), M, D, I, true);
  rmsnormBackward(
    rec,
    s.dxn,
    a.h,
    w("post_attention_layernorm.weight"),
    a.rstd2,
    s.dres,
    g("post_attention_layernorm.weight"),
    M,
    D,
    true,
  );

  // Attention: h = x + o(attn(rope(q(xn1)), rope(k(xn1)), v(xn1))).
  linearGradInput(rec, model, p + "self_attn.o_proj.weight", s.dres, s.datt, M, H * hd, D);
  matmulGradWeight(rec, s.dres, a.att, g("self_attn.o_proj.weight"), M, H * hd, D, true);
  attentionBackward(
    rec,
    a.q,
    a.k,
    a.v,
    a.att,
    a.attLse,
    s.datt,
    s.dq,
    s.dk,
    s.dv,
    pass.B,
    pass.S,
    H,
    G,
    hd,
    1 / Math.sqrt(hd),
  );
  ropeBackward(rec, s.dq, s.dq, pass.pos, model.invFreq, M, H, hd);
  ropeBackward(rec, s.dk, s.dk, pass.pos, model.invFreq, M, G, hd);
  linearGradInput(rec, model, p + "self_attn.q_proj.weight", s.dq, s.dxn, M, D, H * hd);
  linearGradInput(rec, model, p + "self_attn.k_proj.weight", s.dk, s.dxn, M, D, G * hd, true);
  linearGradInput(rec, model, p + "self_attn.v_proj.weight", s.dv, s.dxn, M, D, G * hd, true);
  matmulGradWeight(rec, s.dq, a.xn1, g("self_attn.q_proj.weight"), M, D, H * hd, true);
  matmulGradWeight(rec, s.dk, a.xn1, g("self_attn.k_proj.weight"), M, D, G * hd, true);
  matmulGradWeight(rec, s.dv, a.xn1, g("self_attn.v_proj.weight"), M, D, G * hd, true);
  rmsnormBackward(
    rec,
    s.dxn,
    pass.xs[l],
    w("input_layernorm.weight"),
    a.rstd1,
    s.dres,
    g("input_layernorm.weight"),
    M,
    D,
    true,
  );
}
