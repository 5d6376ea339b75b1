/**
 * The Llama model object: config, f32 weights on the GPU under HF names, and the few derived
 * tensors every pass needs (RoPE inverse frequencies, the LM head, zeroed gradient buffers).
 *
 * The passes themselves live next door: forward.ts (training/scoring pass over planned
 * activations), backward.ts (its reverse) and generate.ts (prefill + KV-cache decode).
 *
 * @module
 */
import type { Gpu } from "../../gpu/device.ts";
import { createBuffer, uploadBuffer } from "../../gpu/buffers.ts";
import { ropeInvFreq } from "../../gpu/rope.ts";
import { expectedTensors, type LlamaConfig, loadLlamaConfig } from "./config.ts";
import { loadWeights, syntheticWeights, type Weights } from "./weights.ts";

/** A Llama (causal LM or sequence classifier) whose f32 weights live on the GPU. */
export class LlamaModel {
  readonly gpu: Gpu;
  readonly config: LlamaConfig;
  readonly weights: Weights;
  #shapes: Map<string, number[]>;
  #invFreq: GPUBuffer | null = null;

  constructor(gpu: Gpu, config: LlamaConfig, weights: Weights) {
    this.gpu = gpu;
    this.config = config;
    this.weights = weights;
    this.#shapes = expectedTensors(config);
    for (const name of this.#shapes.keys()) {
      if (!weights.has(name)) throw new Error(`model weights: missing tensor ${name}`);
    }
  }

  /** Loads config.json and the safetensors weights of an HF model folder. */
  static async load(
    gpu: Gpu,
    dir: string,
    onProgress?: Parameters<typeof loadWeights>[3],
  ): Promise<LlamaModel> {
    const config = await loadLlamaConfig(dir);
    const weights = await loadWeights(gpu, dir, config, onProgress);
    return new LlamaModel(gpu, config, weights);
  }

  /** Random N(0, 0.02) weights of the config's shapes, made on the GPU (deterministic in seed). */
  static synthetic(gpu: Gpu, config: LlamaConfig, seed: number): LlamaModel {
    return new LlamaModel(gpu, config, syntheticWeights(gpu, config, seed));
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

  /** A weight by HF name (clear error when absent). */
  w(name: string): GPUBuffer {
    const b = this.weights.get(name);
    if (!b) throw new Error(`model weights: missing tensor ${name}`);
    return b;
  }

  /** HF name of the LM head weight: `lm_head.weight`, or the embedding when tied. */
  get headName(): string {
    return this.config.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  }

  /** RoPE inverse frequencies [headDim/2] (Llama 3 scaling applied), uploaded once. */
  get invFreq(): GPUBuffer {
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

  /** Zeroed f32 gradient buffers, one per parameter, under HF names. */
  zeroGrads(): Weights {
    const g: Weights = new Map();
    for (const name of this.#shapes.keys()) {
      g.set(name, createBuffer(this.gpu, this.paramNumel(name) * 4, `grad ${name}`));
    }
    return g;
  }
}
