/**
 * The Llama model object: config, weights on the GPU under HF names, and the few derived
 * tensors every pass needs (RoPE inverse frequencies, the LM head, zeroed gradient buffers).
 *
 * Weights are f32, or (storage "bf16", for frozen models: the reference and the reward model)
 * packed BF16 matrices with f32 norm weights; the passes pick the kernel per weight
 * (linear.ts), and a BF16 model refuses gradients.
 *
 * A trained model may compute in BF16 (precision "bf16", {@link LlamaModel.usePrecision}): its
 * f32 weights stay the masters (what AdamW updates and checkpoints save), and each matrix gets a
 * packed-BF16 compute copy that every pass reads ({@link LlamaModel.w}), refreshed from the
 * masters after each optimizer step ({@link LlamaModel.packComputeCopies}). Generation and the
 * training forward then read the same packed values through kernels of the same per-element
 * order, so their log-probs agree bit for bit, as in f32.
 *
 * The passes themselves live next door: layer.ts (one decoder layer, shared by all passes),
 * forward.ts (training/scoring pass over planned activations), backward.ts (its reverse) and
 * generate.ts (prefill + KV-cache decode).
 *
 * @module
 */
import type { Gpu } from "../../gpu/device.ts";
import { createBuffer, uploadBuffer } from "../../gpu/buffers.ts";
import { ropeInvFreq } from "../../gpu/rope.ts";
import { expectedTensors, isNormWeight, type LlamaConfig, loadLlamaConfig } from "./config.ts";
import { packBf16Gpu } from "../../gpu/bf16.ts";
import type { WeightPrecision } from "./precision.ts";
import { Recorder } from "../../gpu/recorder.ts";
import {
  createPackedBf16Buffer,
  isPackedBf16,
  type LoadOptions,
  type LoadProgress,
  loadWeights,
  syntheticWeights,
  type Weights,
  type WeightStorage,
} from "./weights.ts";

/** Options of {@link LlamaModel.load}. */
export interface LlamaLoadOptions extends LoadOptions {
  onProgress?: (p: LoadProgress) => void;
}

/** A Llama (causal LM or sequence classifier) whose weights live on the GPU. */
export class LlamaModel {
  readonly gpu: Gpu;
  readonly config: LlamaConfig;
  readonly weights: Weights;
  /** "bf16" when any weight is packed BF16: then the model is frozen (forward only). */
  readonly storage: WeightStorage;
  #shapes: Map<string, number[]>;
  /** Packed-BF16 compute copies of the matrices (precision "bf16"), by HF name. */
  #compute: Weights = new Map();
  #invFreq: GPUBuffer | null = null;
  #destroyed = false;

  constructor(gpu: Gpu, config: LlamaConfig, weights: Weights) {
    this.gpu = gpu;
    this.config = config;
    this.weights = weights;
    this.#shapes = expectedTensors(config);
    for (const name of this.#shapes.keys()) {
      if (!weights.has(name)) throw new Error(`model weights: missing tensor ${name}`);
    }
    this.storage = [...weights.values()].some(isPackedBf16) ? "bf16" : "f32";
  }

  /**
   * Loads config.json and the safetensors weights of an HF model folder. `opts` may be a
   * progress callback, or options: `storage` "f32" (default), "bf16" or "auto" (see
   * WeightStorage), `roundToBf16`, `onProgress`.
   */
  static async load(
    gpu: Gpu,
    dir: string,
    opts: LlamaLoadOptions | ((p: LoadProgress) => void) = {},
  ): Promise<LlamaModel> {
    const o = typeof opts === "function" ? { onProgress: opts } : opts;
    const config = await loadLlamaConfig(dir);
    const weights = await loadWeights(gpu, dir, config, o.onProgress, o);
    return new LlamaModel(gpu, config, weights);
  }

  /**
   * Random N(0, 0.02) weights of the config's shapes, made on the GPU (deterministic in seed);
   * with storage "bf16", the same values rounded to BF16 (a frozen model).
   */
  static synthetic(
    gpu: Gpu,
    config: LlamaConfig,
    seed: number,
    storage: WeightStorage = "f32",
  ): LlamaModel {
    return new LlamaModel(gpu, config, syntheticWeights(gpu, config, seed, storage));
  }

  /** Parameter names in HF order (a tied model has no lm_head.weight). */
  paramNames(): string[] {
    return [...this.#shapes.keys()];
  }

  /** Shape of a parameter, HF `[out, in]` for matrices. */
  paramShape(name: string): number[] {
    const s = this.#shapes.get(name);
    if (!s) throw new Error(`model: no parameter named ${name}`);
    return s;
  }

  /** Number of elements of a parameter. */
  paramNumel(name: string): number {
    return this.paramShape(name).reduce((a, b) => a * b, 1);
  }

  /** Total number of parameters. */
  paramCount(): number {
    let n = 0;
    for (const name of this.#shapes.keys()) n += this.paramNumel(name);
    return n;
  }

  /** "bf16" once {@link usePrecision} gave the matrices packed compute copies, else "f32". */
  get precision(): WeightPrecision {
    return this.#compute.size > 0 ? "bf16" : "f32";
  }

  /**
   * Sets the precision the passes compute in. "bf16" (f32 weights only) makes a packed-BF16
   * compute copy of every matrix from its f32 master (rounded to nearest even on the GPU, so a
   * model loaded from a checkpoint gets the very copies it trained with) and submits the packs;
   * "f32" changes nothing. Call once, before any pass reads the weights.
   */
  usePrecision(precision: WeightPrecision): void {
    if (precision === "f32") return;
    this.requireTrainable('precision "bf16"');
    if (this.#compute.size > 0) throw new Error('model: precision "bf16" was already set');
    for (const name of this.#shapes.keys()) {
      if (isNormWeight(name)) continue;
      this.#compute.set(
        name,
        createPackedBf16Buffer(this.gpu, this.paramNumel(name), `${name} (bf16 compute)`),
      );
    }
    const rec = new Recorder(this.gpu);
    this.packComputeCopies(rec);
    void rec.submit();
  }

  /**
   * Records the refresh of every compute copy from its master (precision "bf16"; nothing in
   * f32): after each optimizer step, in the same submission, so the next pass reads the update.
   */
  packComputeCopies(rec: Recorder): void {
    for (const [name, copy] of this.#compute) {
      packBf16Gpu(rec, this.master(name), copy, this.paramNumel(name));
    }
  }

  /**
   * The f32 master of a weight: what the optimizer updates and checkpoints save (the weight
   * itself unless precision is "bf16").
   */
  master(name: string): GPUBuffer {
    if (this.#destroyed) {
      throw new Error(`model weights: ${name} was freed (the model's destroy() was called)`);
    }
    const b = this.weights.get(name);
    if (!b) throw new Error(`model weights: missing tensor ${name}`);
    return b;
  }

  /** Whether the weight `name` is stored as packed BF16 (else f32). */
  isBf16(name: string): boolean {
    return isPackedBf16(this.w(name));
  }

  /** Throws unless the weights are f32: a BF16-stored model is frozen (forward only). */
  requireTrainable(what: string): void {
    if (this.storage !== "f32") {
      throw new Error(
        `${what}: this model's weights are stored as BF16 (a frozen copy: forward only); ` +
          `load it with storage "f32" to train it or take gradients`,
      );
    }
  }

  /**
   * The weight every pass reads, by HF name: its packed compute copy under precision "bf16",
   * else the weight itself (clear error when absent, or when the model was freed).
   */
  w(name: string): GPUBuffer {
    const b = this.master(name);
    return this.#compute.get(name) ?? b;
  }

  /** HF name of the LM head weight: `lm_head.weight`, or the embedding when tied. */
  get headName(): string {
    return this.config.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  }

  /** RoPE inverse frequencies [headDim/2] (Llama 3 scaling applied), uploaded once. */
  get invFreq(): GPUBuffer {
    if (this.#destroyed) throw new Error("model: rope.invFreq was freed (destroy() was called)");
    if (!this.#invFreq) {
      const c = this.config;
      this.#invFreq = uploadBuffer(
        this.gpu,
        ropeInvFreq(c.headDim, c.ropeTheta, c.ropeScaling ?? undefined),
        "rope.invFreq",
      );
    }
    return this.#invFreq;
  }

  /** Whether {@link destroy} freed the weights. */
  get destroyed(): boolean {
    return this.#destroyed;
  }

  /**
   * Frees every weight buffer and the RoPE table (call after the last submission that reads
   * them), so a later model's memory is not added to this one's; any later use is an error.
   */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const b of new Set(this.weights.values())) b.destroy();
    for (const b of this.#compute.values()) b.destroy();
    this.#compute.clear();
    this.#invFreq?.destroy();
    this.#invFreq = null;
  }

  /** Zeroed f32 gradient buffers, one per parameter, under HF names (f32 models only). */
  zeroGrads(): Weights {
    this.requireTrainable("zeroGrads");
    const g: Weights = new Map();
    for (const name of this.#shapes.keys()) {
      g.set(name, createBuffer(this.gpu, this.paramNumel(name) * 4, `grad ${name}`));
    }
    return g;
  }
}
