/**
 * The Llama forward pass over planned activation buffers (llm.c style).
 *
 * One {@link ForwardPass} is planned for B sequences padded to S positions (M = B*S rows; row m
 * is sequence m / S at position m % S) and reused for every batch of that shape. Per layer:
 * rmsnorm -> q/k/v matmuls -> RoPE on q and k -> causal GQA attention -> o matmul + residual ->
 * rmsnorm -> gate/up matmuls -> SwiGLU -> down matmul + residual; then the final norm and the LM
 * head in row chunks (so [rows, vocab] logits never exceed a binding) -> token log-probs.
 *
 * Each layer is layer.ts's {@link recordLayerForward}, which generation (generate.ts) shares, so a
 * token's log-prob in generation is computed by exactly the same kernels in the same order as in
 * training: with row-invariant kernels the bits agree. The pass owns its {@link Backward} (the
 * gradient scratch), created on the first backward and freed with the pass.
 *
 * @module
 */
import { createBuffer, uploadBuffer, writeBuffer } from "../../gpu/buffers.ts";
import type { Recorder } from "../../gpu/recorder.ts";
import { embedTokens, linear } from "./linear.ts";
import { rmsnorm } from "../../gpu/rmsnorm.ts";
import { entropy, tokenLogprobs } from "../../gpu/logprobs.ts";
import type { LlamaModel } from "./llama.ts";
import type { Weights } from "./weights.ts";
import { allocLayerActs, type LayerActs, recordLayerForward } from "./layer.ts";
import { Backward } from "./backward.ts";

/** Options of a {@link ForwardPass}. */
export interface ForwardPassOptions {
  /**
   * Keep only each layer's input and recompute the layer's activations in the backward
   * (memory ~ (L+1)*M*D floats plus one layer's activations, at the cost of a second forward).
   */
  recompute?: boolean;
  /** Rows per LM-head chunk (default: as many as fit 256 MiB of logits, 523 rows at vocab 128256). */
  headChunkRows?: number;
  /**
   * A pass that is never differentiated (reference and reward-model scoring): one layer's
   * activations and two residual buffers used in turn, instead of L sets and L+1 residuals;
   * {@link ForwardPass.backward} refuses it. Same kernels, so the same bits.
   */
  forwardOnly?: boolean;
}

/**
 * Rows per LM-head chunk for M rows of a vocabulary of V: `requested` (default all), at most as
 * many as fit the smaller of 256 MiB and the device's binding limit in one logits buffer.
 */
export function headChunkRowsFor(
  V: number,
  M: number,
  maxBindingBytes: number,
  requested?: number,
): number {
  // A chunk's logits are one binding: never past the device's limit (lavapipe: 128 MiB).
  const chunkBytes = Math.min(HEAD_CHUNK_BYTES, maxBindingBytes);
  const fit = Math.max(1, Math.floor(chunkBytes / (V * 4)));
  return Math.min(M, requested ?? fit, fit);
}

/** Output of {@link ForwardPass.forwardLogprobs}. */
export interface LogprobsOut {
  /** log p(targets[m] | tokens[..m]) for every row, f32 [B*S]. */
  logp: GPUBuffer;
  /** Entropy of the next-token distribution per row, f32 [B*S], when asked for. */
  entropy?: GPUBuffer;
}

/** Largest logits chunk, in bytes, the LM head writes at once. */
const HEAD_CHUNK_BYTES = 2 ** 28;

/**
 * Activation buffers and the forward pass for B sequences padded to S, reused across batches.
 * Also the entry point of the backward ({@link ForwardPass.backward}).
 */
export class ForwardPass {
  readonly model: LlamaModel;
  readonly B: number;
  readonly S: number;
  readonly M: number;
  readonly recompute: boolean;
  /** Planned for the forward only (see {@link ForwardPassOptions.forwardOnly}). */
  readonly forwardOnly: boolean;
  /** Rows per LM-head chunk. */
  readonly chunkRows: number;
  /** Token ids, targets, sequence ids and positions per row (u32 [M]). */
  readonly tokens: GPUBuffer;
  readonly targets: GPUBuffer;
  readonly seq: GPUBuffer;
  readonly pos: GPUBuffer;
  /**
   * Residual stream: xs[l] is layer l's input [M, D]; xs[L] the last layer's output (in a
   * forward-only pass two buffers alternate: xs[l] is xs[l % 2]).
   */
  readonly xs: GPUBuffer[];
  /** Per-layer activations (one shared set when recomputing). */
  readonly acts: LayerActs[];
  /** Final norm output [M, D] and 1/rms [M]. */
  readonly xf: GPUBuffer;
  readonly rstdF: GPUBuffer;
  /** LM-head chunk buffers: inputs [chunk, D], targets, logits [chunk, V], lse, logp, entropy. */
  readonly chunk: {
    xf: GPUBuffer;
    targets: GPUBuffer;
    logits: GPUBuffer;
    lse: GPUBuffer;
    logp: GPUBuffer;
    entropy: GPUBuffer;
  };
  /** Per-row logsumexp of the logits [M], log-probs [M], entropies [M]. */
  readonly lse: GPUBuffer;
  readonly logp: GPUBuffer;
  readonly entropy: GPUBuffer;
  /** The token ids of the last forward, on the host (the embedding backward groups by them). */
  tokensHost: Uint32Array | null = null;
  #logitsFull: GPUBuffer | null = null;
  #picked: GPUBuffer | null = null;
  #backward: Backward | null = null;
  /** Upload buffers for token ids [M], each free again once the recorder that used it submits. */
  #idUploads: { buf: GPUBuffer; rec: Recorder | null; submitCount: number }[] = [];

  constructor(model: LlamaModel, B: number, S: number, opts: ForwardPassOptions = {}) {
    for (const [what, v] of [["B", B], ["S", S]] as const) {
      if (!Number.isInteger(v) || v < 1) {
        throw new Error(`ForwardPass: ${what} must be >= 1, got ${v}`);
      }
    }
    const gpu = model.gpu, c = model.config;
    this.model = model;
    this.B = B;
    this.S = S;
    const M = this.M = B * S;
    const D = c.hiddenSize, V = c.vocabSize;
    this.recompute = opts.recompute ?? false;
    this.forwardOnly = opts.forwardOnly ?? false;
    const maxBinding = gpu.bindingLimit;
    this.chunkRows = headChunkRowsFor(V, M, maxBinding, opts.headChunkRows);
    const seq = new Uint32Array(M), pos = new Uint32Array(M);
    for (let m = 0; m < M; m++) {
      seq[m] = Math.floor(m / S);
      pos[m] = m % S;
    }
    this.seq = uploadBuffer(gpu, seq, "pass.seq");
    this.pos = uploadBuffer(gpu, pos, "pass.pos");
    this.tokens = createBuffer(gpu, M * 4, "pass.tokens");
    this.targets = createBuffer(gpu, M * 4, "pass.targets");
    this.xs = [];
    for (let l = 0; l <= c.numLayers; l++) {
      // Forward-only: layer l reads xs[l] and writes xs[l+1], so two buffers in turn suffice.
      this.xs.push(
        this.forwardOnly && l >= 2 ? this.xs[l - 2] : createBuffer(gpu, M * D * 4, `pass.x${l}`),
      );
    }
    this.acts = [];
    const nSets = this.recompute || this.forwardOnly ? 1 : c.numLayers;
    for (let l = 0; l < nSets; l++) this.acts.push(allocLayerActs(gpu, model, M, `pass.layer${l}`));
    this.xf = createBuffer(gpu, M * D * 4, "pass.xf");
    this.rstdF = createBuffer(gpu, M * 4, "pass.rstdF");
    this.lse = createBuffer(gpu, M * 4, "pass.lse");
    this.logp = createBuffer(gpu, M * 4, "pass.logp");
    this.entropy = createBuffer(gpu, M * 4, "pass.entropy");
    const R = this.chunkRows;
    const single = R === M;
    this.chunk = {
      xf: single ? this.xf : createBuffer(gpu, R * D * 4, "pass.chunk.xf"),
      targets: single ? this.targets : createBuffer(gpu, R * 4, "pass.chunk.targets"),
      logits: createBuffer(gpu, R * V * 4, "pass.chunk.logits"),
      lse: single ? this.lse : createBuffer(gpu, R * 4, "pass.chunk.lse"),
      logp: single ? this.logp : createBuffer(gpu, R * 4, "pass.chunk.logp"),
      entropy: single ? this.entropy : createBuffer(gpu, R * 4, "pass.chunk.entropy"),
    };
  }

  /** Number of LM-head chunks. */
  get nChunks(): number {
    return Math.ceil(this.M / this.chunkRows);
  }

  /** Layer l's activation set (the shared one when recomputing or forward-only). */
  actsOf(l: number): LayerActs {
    return this.acts.length === 1 ? this.acts[0] : this.acts[l];
  }

  #uploadIds(rec: Recorder, ids: Uint32Array, dst: GPUBuffer, what: string, limit: number): void {
    if (ids.length !== this.M) {
      throw new Error(`forward: ${what} has ${ids.length} ids, want B*S = ${this.M}`);
    }
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] >= limit) {
        throw new Error(`forward: ${what}[${i}] = ${ids[i]} is >= vocab ${limit}`);
      }
    }
    // queue.writeBuffer lands at once, before the recorder's pending work, so an upload buffer
    // is rewritten only after the submission that reads it: two forwards recorded into one
    // submission take two buffers. The pool stays as large as the most ids ever in flight.
    let slot = this.#idUploads.find((u) => !u.rec || u.rec.submitCount !== u.submitCount);
    if (!slot) {
      const buf = createBuffer(this.model.gpu, this.M * 4, "pass.ids.upload");
      this.#idUploads.push(slot = { buf, rec: null, submitCount: 0 });
    }
    writeBuffer(this.model.gpu, slot.buf, ids);
    slot.rec = rec;
    slot.submitCount = rec.submitCount;
    rec.copy(slot.buf, 0, dst, 0, ids.byteLength);
  }

  /** Number of token-id upload buffers the pass holds (they are reused, never leaked). */
  get idUploadBuffers(): number {
    return this.#idUploads.length;
  }

  /** Records embedding -> layers -> final norm for `tokens` (B*S ids). */
  forwardTrunk(rec: Recorder, tokens: Uint32Array): void {
    const c = this.model.config, M = this.M, D = c.hiddenSize;
    this.#uploadIds(rec, tokens, this.tokens, "tokens", c.vocabSize);
    this.tokensHost = tokens.slice();
    embedTokens(rec, this.model, this.tokens, this.xs[0], M);
    for (let l = 0; l < c.numLayers; l++) this.recordLayer(rec, l);
    rmsnorm(
      rec,
      this.xs[c.numLayers],
      this.model.w("model.norm.weight"),
      this.xf,
      this.rstdF,
      M,
      D,
      c.rmsNormEps,
    );
  }

  /** Records layer l from xs[l] into xs[l+1] (also used by the backward to recompute). */
  recordLayer(rec: Recorder, l: number): void {
    recordLayerForward(
      rec,
      this.model,
      l,
      this.xs[l],
      this.xs[l + 1],
      this.actsOf(l),
      this.M,
      this.seq,
      this.pos,
      {
        kc: null,
        vc: null,
        S: this.S,
      },
    );
  }

  /** Copies rows [r0, r0+n) of the final hidden state into the chunk input (when chunking). */
  headChunkInput(rec: Recorder, r0: number, n: number): void {
    if (this.chunk.xf === this.xf) return;
    const D = this.model.config.hiddenSize;
    rec.copy(this.xf, r0 * D * 4, this.chunk.xf, 0, n * D * 4);
    rec.copy(this.targets, r0 * 4, this.chunk.targets, 0, n * 4);
  }

  #requireCausalLm(what: string): void {
    if (this.model.config.architecture !== "LlamaForCausalLM") {
      throw new Error(
        `${what} needs a LlamaForCausalLM model, this is ${this.model.config.architecture}`,
      );
    }
  }

  /**
   * Records the whole forward and the log-probability of `targets[m]` at every row m
   * (B*S ids each; padding rows may hold any valid id, their results are simply ignored).
   */
  forwardLogprobs(
    rec: Recorder,
    tokens: Uint32Array,
    targets: Uint32Array,
    opts: { entropy?: boolean } = {},
  ): LogprobsOut {
    this.#requireCausalLm("forwardLogprobs");
    const c = this.model.config, V = c.vocabSize, D = c.hiddenSize;
    this.forwardTrunk(rec, tokens);
    this.#uploadIds(rec, targets, this.targets, "targets", V);
    const head = this.model.headName;
    const ch = this.chunk;
    for (let r0 = 0; r0 < this.M; r0 += this.chunkRows) {
      const n = Math.min(this.chunkRows, this.M - r0);
      this.headChunkInput(rec, r0, n);
      linear(rec, this.model, head, ch.xf, ch.logits, n, D, V);
      tokenLogprobs(rec, ch.logits, ch.targets, ch.logp, ch.lse, n, V);
      if (opts.entropy) entropy(rec, ch.logits, ch.lse, ch.entropy, n, V);
      if (ch.logp !== this.logp) {
        rec.copy(ch.logp, 0, this.logp, r0 * 4, n * 4);
        rec.copy(ch.lse, 0, this.lse, r0 * 4, n * 4);
        if (opts.entropy) rec.copy(ch.entropy, 0, this.entropy, r0 * 4, n * 4);
      }
    }
    return opts.entropy ? { logp: this.logp, entropy: this.entropy } : { logp: this.logp };
  }

  /** Records the forward and returns all logits [B*S, vocab] in one buffer (small models only). */
  forwardLogits(rec: Recorder, tokens: Uint32Array): GPUBuffer {
    this.#requireCausalLm("forwardLogits");
    const c = this.model.config;
    this.forwardTrunk(rec, tokens);
    this.#logitsFull ??= createBuffer(this.model.gpu, this.M * c.vocabSize * 4, "pass.logits");
    linear(
      rec,
      this.model,
      this.model.headName,
      this.xf,
      this.#logitsFull,
      this.M,
      c.hiddenSize,
      c.vocabSize,
    );
    return this.#logitsFull;
  }

  /**
   * Records the forward and gathers the final-normed hidden state at the given rows (flat row
   * indices b*S + t) into a buffer [rows.length, D] owned by the pass (valid until its next use).
   */
  forwardHidden(rec: Recorder, tokens: Uint32Array, rows: number[]): GPUBuffer {
    const D = this.model.config.hiddenSize;
    this.forwardTrunk(rec, tokens);
    if (!this.#picked || this.#picked.size < rows.length * D * 4) {
      this.#picked?.destroy();
      this.#picked = createBuffer(this.model.gpu, rows.length * D * 4, "pass.pickedRows");
    }
    const picked = this.#picked;
    rows.forEach((r, i) => {
      if (!Number.isInteger(r) || r < 0 || r >= this.M) {
        throw new Error(`forwardHidden: row ${r} outside 0..${this.M - 1}`);
      }
      rec.copy(this.xf, r * D * 4, picked, i * D * 4, D * 4);
    });
    return picked;
  }

  /**
   * Next-token logits at the given rows only: {@link forwardHidden}, then the LM head on those
   * rows. Returns a new f32 buffer [rows.length, vocab] that the caller owns (and destroys);
   * what a judge reads its verdict from, without a [B*S, vocab] logits buffer.
   */
  forwardLogitsAt(rec: Recorder, tokens: Uint32Array, rows: number[]): GPUBuffer {
    this.#requireCausalLm("forwardLogitsAt");
    const c = this.model.config;
    const picked = this.forwardHidden(rec, tokens, rows);
    const out = createBuffer(this.model.gpu, rows.length * c.vocabSize * 4, "pass.rowLogits");
    linear(
      rec,
      this.model,
      this.model.headName,
      picked,
      out,
      rows.length,
      c.hiddenSize,
      c.vocabSize,
    );
    return out;
  }

  /**
   * Reward-model head: {@link forwardHidden} at the given rows, then `score.weight`. Returns a
   * new f32 buffer [rows.length, numLabels] that the caller owns (and destroys).
   */
  forwardScores(rec: Recorder, tokens: Uint32Array, rows: number[]): GPUBuffer {
    const c = this.model.config, D = c.hiddenSize;
    if (c.architecture !== "LlamaForSequenceClassification") {
      throw new Error(
        `forwardScores needs a LlamaForSequenceClassification model, this is ${c.architecture}`,
      );
    }
    const picked = this.forwardHidden(rec, tokens, rows);
    const out = createBuffer(this.model.gpu, rows.length * c.numLabels * 4, "pass.scores");
    linear(rec, this.model, "score.weight", picked, out, rows.length, D, c.numLabels);
    return out;
  }

  /**
   * Frees every buffer the pass planned, the backward's scratch included (call after the last
   * submission that uses them), so passes of changing shapes do not accumulate GPU memory.
   */
  destroy(): void {
    const bufs = [
      this.seq,
      this.pos,
      this.tokens,
      this.targets,
      ...this.xs,
      ...this.acts.flatMap((a) => Object.values(a)),
      this.xf,
      this.rstdF,
      this.lse,
      this.logp,
      this.entropy,
      ...Object.values(this.chunk),
    ];
    for (const b of new Set(bufs)) b.destroy();
    this.#logitsFull?.destroy();
    this.#picked?.destroy();
    this.#logitsFull = this.#picked = null;
    for (const u of this.#idUploads) u.buf.destroy();
    this.#idUploads = [];
    this.#backward?.destroy();
    this.#backward = null;
  }

  /**
   * Records the backward of loss = Σ_m dlogp[m] * logp[m] for the activations of the last
   * {@link forwardLogprobs}, accumulating every parameter's gradient into `grads` (HF names;
   * the caller zeroes them). Tied embeddings get both contributions.
   */
  backward(rec: Recorder, dlogp: GPUBuffer, grads: Weights): void {
    this.#requireCausalLm("backward");
    this.model.requireTrainable("backward");
    if (this.forwardOnly) {
      throw new Error("backward: this pass was planned forward-only (forwardOnly: true)");
    }
    (this.#backward ??= new Backward(this)).record(rec, dlogp, grads);
  }
}
