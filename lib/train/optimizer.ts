/**
 * AdamW over every parameter of a model, on the GPU: per-parameter f32 gradient, m and v
 * buffers; zeroing; global-norm clipping; the update. One step records `sumSquaresMulti` ->
 * `clipScale` -> `adamwMulti` (gpu/optimizer.ts: several tensors a dispatch, the bits of the
 * per-tensor kernels) into the caller's recorder, so it shares the submission with the backward
 * pass, and queues one tiny readback of [grad norm, clip scale].
 *
 * Gradient accumulation over micro-batches is a plain sum: the model's backward accumulates
 * into {@link AdamW.grads}, and the losses fold the step-wide normalizer into dlogp (see
 * losses.ts), so no separate scaling pass is needed.
 *
 * @module
 */
import type { Gpu } from "../../gpu/device.ts";
import { createBuffer, readF32, writeBuffer } from "../../gpu/buffers.ts";
import type { Recorder } from "../../gpu/recorder.ts";
import {
  adamwMulti,
  clipScale,
  createNormOut,
  sumSquaresMulti,
  SumSquaresPlan,
} from "../../gpu/optimizer.ts";
import { isPackedBf16 } from "../model/weights.ts";

/** AdamW hyper-parameters (the learning rate comes per step from the schedule). */
export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  /** Decoupled weight decay, applied to matrices only (not to 1-D norm weights). */
  weightDecay: number;
  /** Global gradient-norm clip; <= 0 disables clipping (the norm is still reported). */
  maxGradNorm: number;
}

/** Defaults as in PyTorch's AdamW, with clipping at 1.0. */
export const DEFAULT_ADAMW: AdamWConfig = {
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0.01,
  maxGradNorm: 1.0,
};

/** One trainable tensor: its name (HF), shape and the GPU buffer holding its f32 values. */
export interface TrainableParam {
  name: string;
  shape: number[];
  buffer: GPUBuffer;
}

/** What {@link trainableParams} needs of a model (LlamaModel has it). */
export interface ParameterSource {
  paramNames(): string[];
  paramShape(name: string): number[];
  w(name: string): GPUBuffer;
  /** The f32 master the optimizer updates, where it differs from `w` (a bf16-precision model). */
  master?(name: string): GPUBuffer;
}

/**
 * Every parameter of a model as a {@link TrainableParam} (its own weight buffer, or its f32
 * master under precision "bf16", is updated).
 */
export function trainableParams(model: ParameterSource): TrainableParam[] {
  return model.paramNames().map((name) => {
    const buffer = model.master ? model.master(name) : model.w(name);
    if (isPackedBf16(buffer)) {
      throw new Error(
        `trainableParams: ${name} is stored as BF16 (a frozen model: forward only); ` +
          `load the model with storage "f32" to train it`,
      );
    }
    return { name, shape: model.paramShape(name), buffer };
  });
}

/** Optimizer state of one parameter. */
interface Slot {
  name: string;
  shape: number[];
  numel: number;
  param: GPUBuffer;
  grad: GPUBuffer;
  m: GPUBuffer;
  v: GPUBuffer;
}

/** What one step reports once its submission has completed. */
export interface StepReport {
  /** Global L2 norm of the (accumulated) gradient before clipping. */
  gradNorm: number;
  /** Factor the gradient was multiplied by (1 when not clipped). */
  clipScale: number;
}

/** AdamW with f32 master weights and state, all on the GPU. */
export class AdamW {
  readonly gpu: Gpu;
  readonly config: AdamWConfig;
  /** Gradient buffers by parameter name: pass this to the model's backward. */
  readonly grads: Map<string, GPUBuffer> = new Map();
  /** Number of completed optimizer steps (the next step's bias correction uses step + 1). */
  step = 0;
  readonly #slots: Slot[];
  readonly #partials: GPUBuffer;
  readonly #normPlan: SumSquaresPlan;
  readonly #normOut: GPUBuffer;

  constructor(gpu: Gpu, params: TrainableParam[], config: AdamWConfig = DEFAULT_ADAMW) {
    if (params.length === 0) throw new Error("AdamW: no parameters");
    this.gpu = gpu;
    this.config = { ...config };
    const seen = new Set<string>();
    // Sorted by name: the reduction order of the global norm is then fixed by the names alone.
    this.#slots = [...params].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map((p) => {
        if (seen.has(p.name)) throw new Error(`AdamW: parameter ${p.name} given twice`);
        seen.add(p.name);
        const numel = p.shape.reduce((a, b) => a * b, 1);
        if (p.buffer.size < numel * 4) {
          throw new Error(`AdamW: buffer of ${p.name} holds fewer than ${numel} f32 values`);
        }
        const slot: Slot = {
          name: p.name,
          shape: [...p.shape],
          numel,
          param: p.buffer,
          grad: createBuffer(gpu, numel * 4, `grad ${p.name}`),
          m: createBuffer(gpu, numel * 4, `adam m ${p.name}`),
          v: createBuffer(gpu, numel * 4, `adam v ${p.name}`),
        };
        this.grads.set(p.name, slot.grad);
        return slot;
      });
    this.#partials = createBuffer(gpu, this.#slots.length * 4, "grad norm partials");
    this.#normPlan = new SumSquaresPlan(gpu, this.#slots.map((s) => s.numel));
    this.#normOut = createNormOut(gpu);
  }

  /** Parameter names in the optimizer's fixed order. */
  get names(): string[] {
    return this.#slots.map((s) => s.name);
  }

  /** Total number of trainable values. */
  get numel(): number {
    return this.#slots.reduce((a, s) => a + s.numel, 0);
  }

  /** Records zeroing of every gradient buffer (before the first micro-batch of a step). */
  zeroGrads(rec: Recorder): void {
    for (const s of this.#slots) rec.clear(s.grad);
  }

  /**
   * Records one AdamW step at learning rate `lr` (clip, decay, update) and increments
   * {@link step}. The returned promise resolves after the recorder's next submit.
   */
  recordStep(rec: Recorder, lr: number): Promise<StepReport> {
    const c = this.config;
    const step = this.step + 1;
    const grads = this.#slots.map((s) => s.grad);
    sumSquaresMulti(rec, this.#normPlan, grads, this.#partials);
    clipScale(rec, this.#partials, this.#slots.length, c.maxGradNorm, this.#normOut);
    const tensors = this.#slots.map((s) => ({
      param: s.param,
      grad: s.grad,
      m: s.m,
      v: s.v,
      n: s.numel,
      weightDecay: s.shape.length >= 2 ? c.weightDecay : 0,
    }));
    const opts = { lr, beta1: c.beta1, beta2: c.beta2, eps: c.eps, weightDecay: 0, step };
    adamwMulti(rec, tensors, opts, this.#normOut);
    this.step = step;
    return rec.read(this.#normOut, 0, 8).then((b) => {
      const f = new Float32Array(b);
      return { gradNorm: f[0], clipScale: f[1] };
    });
  }

  /** Reads m and v of every parameter back (for checkpoints). */
  async readState(): Promise<Map<string, { m: Float32Array; v: Float32Array; shape: number[] }>> {
    const out = new Map<string, { m: Float32Array; v: Float32Array; shape: number[] }>();
    for (const s of this.#slots) {
      out.set(s.name, {
        m: await readF32(this.gpu, s.m, s.numel),
        v: await readF32(this.gpu, s.v, s.numel),
        shape: s.shape,
      });
    }
    return out;
  }

  /** Restores m, v and the step count (from a checkpoint); every parameter must be present. */
  loadState(
    state: Map<string, { m: Float32Array; v: Float32Array }>,
    step: number,
    source: string,
  ): void {
    for (const s of this.#slots) {
      const st = state.get(s.name);
      if (!st) throw new Error(`${source}: optimizer state for ${s.name} is missing`);
      if (st.m.length !== s.numel || st.v.length !== s.numel) {
        throw new Error(`${source}: optimizer state for ${s.name} has the wrong size`);
      }
      writeBuffer(this.gpu, s.m, st.m);
      writeBuffer(this.gpu, s.v, st.v);
    }
    for (const name of state.keys()) {
      if (!this.grads.has(name)) throw new Error(`${source}: unknown parameter ${name}`);
    }
    this.step = step;
  }

  /** Frees the optimizer's own buffers (not the parameters). */
  destroy(): void {
    for (const s of this.#slots) {
      s.grad.destroy();
      s.m.destroy();
      s.v.destroy();
    }
    this.#partials.destroy();
    this.#normPlan.destroy();
    this.#normOut.destroy();
  }
}
