/**
 * Model weights on the GPU: `Weights` maps HF tensor names to f32 storage buffers.
 *
 * Loading streams each tensor from its safetensors file to its buffer in chunks (a 3B model in
 * bf16 is ~6 GB on disk and ~13 GB as f32, so nothing holds a whole model on the host), with a
 * periodic queue flush so the driver's upload staging memory stays bounded. Synthetic weights
 * are drawn on the GPU by gpu/init.ts. Saving reads buffers back and writes the HF layout.
 *
 * @module
 */
import type { Gpu } from "../../gpu/device.ts";
import { createBuffer, writeBuffer } from "../../gpu/buffers.ts";
import { Recorder } from "../../gpu/recorder.ts";
import { fillConst, fillNormal } from "../../gpu/init.ts";
import {
  checkTensors,
  expectedTensors,
  isNormWeight,
  type LlamaConfig,
  loadLlamaConfig,
  toHfConfigJson,
} from "./config.ts";
import {
  type Dtype,
  INDEX_FILE,
  ModelFormatError,
  openCheckpoint,
  SINGLE_FILE,
  streamTensorF32,
  writeFileAtomic,
  writeSafetensors,
} from "./safetensors.ts";
import { tensorSeed } from "./random_model.ts";

/** HF tensor name -> f32 GPU buffer (buffers may be padded past the tensor's end). */
export type Weights = Map<string, GPUBuffer>;

/** Progress of {@link loadWeights}, reported after each chunk. */
export interface LoadProgress {
  tensor: string;
  tensorIndex: number;
  tensorCount: number;
  /** Bytes of f32 uploaded so far over all tensors, and in total. */
  doneBytes: number;
  totalBytes: number;
}

/** Tuning of {@link loadWeights} (tests use tiny values to exercise the chunked path). */
export interface LoadOptions {
  /** File bytes read per chunk (default 64 MiB). */
  chunkBytes?: number;
  /** Uploaded bytes after which the queue is flushed (default 512 MiB). */
  flushBytes?: number;
}

/** Element counts of buffers this module created, so readback needs no shapes. */
const elementCounts = new WeakMap<GPUBuffer, number>();

const CHUNK_BYTES = 64 << 20;
const FLUSH_BYTES = 512 << 20;

const numelOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * Loads the checkpoint in `dir` (validated against `config`, see checkTensors) into f32 GPU
 * buffers, streaming each tensor in chunks. Tied models get no `lm_head.weight` entry even if
 * the file carries one.
 */
export async function loadWeights(
  gpu: Gpu,
  dir: string,
  config: LlamaConfig,
  onProgress?: (p: LoadProgress) => void,
  opts: LoadOptions = {},
): Promise<Weights> {
  const chunkBytes = opts.chunkBytes ?? CHUNK_BYTES;
  const flushBytes = opts.flushBytes ?? FLUSH_BYTES;
  const ckpt = await openCheckpoint(dir);
  checkTensors(config, ckpt);
  const want = expectedTensors(config);
  let totalBytes = 0;
  for (const s of want.values()) totalBytes += numelOf(s) * 4;
  const weights: Weights = new Map();
  let doneBytes = 0, sinceFlush = 0, index = 0;
  try {
    for (const [name, shape] of want) {
      const { file } = ckpt.tensors.get(name)!;
      const n = numelOf(shape);
      const buf = createBuffer(gpu, n * 4, name);
      elementCounts.set(buf, n);
      weights.set(name, buf);
      await streamTensorF32(file, name, chunkBytes, async (chunk, offset) => {
        writeBuffer(gpu, buf, chunk, offset * 4);
        doneBytes += chunk.byteLength;
        sinceFlush += chunk.byteLength;
        if (sinceFlush >= flushBytes) {
          // Uploads are staged until a submission; flush so staging memory stays bounded.
          gpu.device.queue.submit([]);
          await gpu.device.queue.onSubmittedWorkDone();
          sinceFlush = 0;
        }
        onProgress?.({
          tensor: name,
          tensorIndex: index,
          tensorCount: want.size,
          doneBytes,
          totalBytes,
        });
      });
      index++;
    }
    gpu.device.queue.submit([]);
    await gpu.device.queue.onSubmittedWorkDone();
  } catch (e) {
    for (const b of weights.values()) b.destroy();
    throw e;
  }
  return weights;
}

/**
 * Random weights made on the GPU: N(0, 0.02^2) for matrices, ones for norm weights. Each
 * tensor's stream is keyed by (seed, name), so a given seed always gives the same weights.
 * The fills are submitted before this returns.
 */
export function syntheticWeights(gpu: Gpu, config: LlamaConfig, seed: number): Weights {
  const weights: Weights = new Map();
  const rec = new Recorder(gpu);
  for (const [name, shape] of expectedTensors(config)) {
    const n = numelOf(shape);
    const buf = createBuffer(gpu, n * 4, name);
    elementCounts.set(buf, n);
    if (isNormWeight(name)) fillConst(rec, buf, n, 1);
    else fillNormal(rec, buf, n, tensorSeed(seed, name), 0.02);
    weights.set(name, buf);
  }
  void rec.submit();
  return weights;
}

/**
 * Reads every weight back to the host, one tensor at a time. Lengths come from `config` when
 * given, else from the buffers' recorded sizes (buffers made here), else from the buffer size.
 */
export async function readWeightsToHost(
  gpu: Gpu,
  weights: Weights,
  config?: LlamaConfig,
): Promise<Map<string, Float32Array>> {
  const shapes = config ? expectedTensors(config) : null;
  const out = new Map<string, Float32Array>();
  for (const [name, buf] of weights) {
    const shape = shapes?.get(name);
    const n = shape ? numelOf(shape) : elementCounts.get(buf) ?? buf.size / 4;
    if (n * 4 > buf.size) {
      throw new RangeError(
        `readWeightsToHost: ${name} needs ${n * 4} bytes, buffer has ${buf.size}`,
      );
    }
    const rec = new Recorder(gpu);
    const p = rec.read(buf, 0, n * 4);
    await rec.submit();
    out.set(name, new Float32Array(await p));
  }
  return out;
}

const TORCH_DTYPE: Record<Dtype, string> = { F32: "float32", F16: "float16", BF16: "bfloat16" };

/**
 * Writes an HF checkpoint into `dir` (created if needed): model.safetensors in `dtype` and then
 * config.json, each atomically. Every tensor the config implies must be present with its exact
 * length; a stale shard index in `dir` is removed so loaders see the new file.
 */
export async function saveWeights(
  dir: string,
  config: LlamaConfig,
  host: Map<string, Float32Array>,
  dtype: Dtype,
): Promise<void> {
  const want = expectedTensors(config);
  const tensors = [];
  for (const [name, shape] of want) {
    const data = host.get(name);
    if (!data) throw new ModelFormatError(`${dir}: saveWeights: tensor ${name} is missing`);
    if (data.length !== numelOf(shape)) {
      throw new ModelFormatError(
        `${dir}: saveWeights: tensor ${name} has ${data.length} values, shape ` +
          `${JSON.stringify(shape)} needs ${numelOf(shape)}`,
      );
    }
    tensors.push({ name, dtype, shape, data });
  }
  for (const name of host.keys()) {
    if (!want.has(name)) {
      throw new ModelFormatError(`${dir}: saveWeights: tensor ${name} is not part of this config`);
    }
  }
  await Deno.mkdir(dir, { recursive: true });
  await writeSafetensors(`${dir}/${SINGLE_FILE}`, tensors, { format: "pt" });
  await Deno.remove(`${dir}/${INDEX_FILE}`).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
  const json = toHfConfigJson({ ...config, torchDtype: TORCH_DTYPE[dtype] });
  await writeFileAtomic(
    `${dir}/config.json`,
    new TextEncoder().encode(JSON.stringify(json, null, 2) + "\n"),
  );
}

/** Convenience: the config and weights of an HF directory. */
export async function loadModelDir(
  gpu: Gpu,
  dir: string,
  onProgress?: (p: LoadProgress) => void,
): Promise<{ config: LlamaConfig; weights: Weights }> {
  const config = await loadLlamaConfig(dir);
  return { config, weights: await loadWeights(gpu, dir, config, onProgress) };
}
