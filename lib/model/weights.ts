/**
 * Model weights on the GPU: `Weights` maps HF tensor names to storage buffers, f32, or packed
 * BF16 (gpu/bf16.ts) for frozen models loaded with storage "bf16" ({@link isPackedBf16} tells).
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
import { packBf16, packBf16Gpu, packedBf16Bytes, unpackBf16 } from "../../gpu/bf16.ts";
import {
  checkTensors,
  expectedTensors,
  isNormWeight,
  type LlamaConfig,
  loadLlamaConfig,
  toHfConfigJson,
} from "./config.ts";
import { atomicWriteFile } from "../util/atomic_write.ts";
import { INDEX_FILE, openCheckpoint, SINGLE_FILE } from "./safetensors/checkpoint_folder.ts";
import { f32ToBf16 } from "./safetensors/dtype.ts";
import { type Dtype, DTYPE_BYTES, ModelFormatError } from "./safetensors/format.ts";
import { streamTensorF32 } from "./safetensors/read.ts";
import { writeSafetensors } from "./safetensors/write.ts";
import { tensorSeed } from "./random_model.ts";

/** HF tensor name -> GPU buffer (buffers may be padded past the tensor's end). */
export type Weights = Map<string, GPUBuffer>;

/**
 * How a model's weights are stored on the GPU: "f32", or "bf16" (matrices as packed BF16, norm
 * weights f32; frozen models only). "auto" picks "bf16" when every matrix in the checkpoint is
 * BF16 (then storing them is exact), else "f32".
 */
export type WeightStorage = "f32" | "bf16";
/** A requested {@link WeightStorage}, or "auto". */
export type WeightStorageChoice = WeightStorage | "auto";

/** The storage choices a manifest may name, for zod enums and messages. */
export const WEIGHT_STORAGE_CHOICES = ["auto", "f32", "bf16"] as const;

/**
 * Load options for a frozen model (the LSP reference, a reward model) from a storage knob:
 * "auto" stores a BF16 checkpoint as BF16 (exact) and any other as f32; "bf16" is an explicit
 * request, so F32/F16 matrices are rounded to BF16; "f32" widens everything.
 */
export function frozenLoadOptions(storage: WeightStorageChoice): LoadOptions {
  return { storage, roundToBf16: storage === "bf16" };
}

/** Element counts of buffers this module created, so readback needs no shapes. */
const elementCounts = new WeakMap<GPUBuffer, number>();

/** Buffers holding packed BF16 rather than f32 (made by {@link loadWeights}). */
const packedBuffers = new WeakSet<GPUBuffer>();

/** Whether a weight buffer holds packed BF16 (two values per u32, gpu/bf16.ts) rather than f32. */
export function isPackedBf16(buf: GPUBuffer): boolean {
  return packedBuffers.has(buf);
}

/** A buffer for `n` packed BF16 values, known to {@link isPackedBf16} and readback. */
export function createPackedBf16Buffer(gpu: Gpu, n: number, label: string): GPUBuffer {
  const buf = createBuffer(gpu, packedBf16Bytes(n), label);
  packedBuffers.add(buf);
  elementCounts.set(buf, n);
  return buf;
}

/** Progress of {@link loadWeights}, reported after each chunk. */
export interface LoadProgress {
  tensor: string;
  tensorIndex: number;
  tensorCount: number;
  /** Bytes uploaded so far over all tensors, and in total (as stored on the GPU). */
  doneBytes: number;
  totalBytes: number;
}

/** Tuning of {@link loadWeights} (tests use tiny values to exercise the chunked path). */
export interface LoadOptions {
  /** File bytes read per chunk (default 64 MiB). */
  chunkBytes?: number;
  /** Uploaded bytes after which the queue is flushed (default 512 MiB). */
  flushBytes?: number;
  /** Weight storage on the GPU (default "f32"); see {@link WeightStorage}. */
  storage?: WeightStorageChoice;
  /**
   * With storage "bf16": round F32/F16 matrices to BF16 (nearest even). Without it such a
   * checkpoint is refused, since rounding changes the model; BF16 tensors are stored as-is.
   */
  roundToBf16?: boolean;
}

const CHUNK_BYTES = 64 << 20;
const FLUSH_BYTES = 512 << 20;

const numelOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * Loads the checkpoint in `dir` (validated against `config`, see checkTensors) into GPU buffers
 * (f32, or packed BF16 matrices with `opts.storage`), streaming each tensor in chunks. Tied
 * models get no `lm_head.weight` entry even if the file carries one.
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
  let storage = opts.storage ?? "f32";
  if (storage === "auto") {
    const allBf16 = [...want.keys()].every((name) =>
      isNormWeight(name) || ckpt.tensors.get(name)!.info.dtype === "BF16"
    );
    storage = allBf16 ? "bf16" : "f32";
  }
  const packs = (name: string) => storage === "bf16" && !isNormWeight(name);
  if (storage === "bf16" && !opts.roundToBf16) {
    for (const name of want.keys()) {
      const { file, info } = ckpt.tensors.get(name)!;
      if (packs(name) && info.dtype !== "BF16") {
        throw new ModelFormatError(
          `${file.path}: tensor ${name} is ${info.dtype}; storage "bf16" keeps BF16 tensors as ` +
            `they are and rounds others only when asked (roundToBf16), or load it as "f32"`,
        );
      }
    }
  }
  const storedBytes = (name: string, n: number) => packs(name) ? packedBf16Bytes(n) : n * 4;
  let totalBytes = 0;
  for (const [name, s] of want) totalBytes += storedBytes(name, numelOf(s));
  const weights: Weights = new Map();
  let doneBytes = 0, sinceFlush = 0, index = 0;
  try {
    for (const [name, shape] of want) {
      const { file, info } = ckpt.tensors.get(name)!;
      const n = numelOf(shape);
      const packed = packs(name);
      const buf = createBuffer(gpu, storedBytes(name, n), name);
      elementCounts.set(buf, n);
      if (packed) packedBuffers.add(buf);
      weights.set(name, buf);
      // Packed chunks must start on a word: an even number of elements per chunk.
      const eb = DTYPE_BYTES[info.dtype];
      const readBytes = packed ? Math.max(2, 2 * Math.floor(chunkBytes / eb / 2)) * eb : chunkBytes;
      await streamTensorF32(file, name, readBytes, async (chunk, offset) => {
        const data = packed ? packBf16(narrowToBf16(chunk, info.dtype === "BF16")) : chunk;
        writeBuffer(gpu, buf, data, packed ? offset * 2 : offset * 4);
        doneBytes += data.byteLength;
        sinceFlush += data.byteLength;
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
 * BF16 bits of f32 values: the high halves when the values were widened from BF16 (exact, NaN
 * payloads included), else rounded to nearest even.
 */
function narrowToBf16(x: Float32Array, fromBf16: boolean): Uint16Array {
  if (!fromBf16) return f32ToBf16(x);
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < u.length; i++) out[i] = u[i] >>> 16;
  return out;
}

/**
 * Random weights made on the GPU: N(0, 0.02^2) for matrices, ones for norm weights. Each
 * tensor's stream is keyed by (seed, name), so a given seed always gives the same weights.
 * With storage "bf16" the matrices are those same values rounded to BF16 and packed, each
 * drawn into a temporary f32 buffer freed after its own submission (peak: one f32 tensor).
 * The fills are submitted before this returns.
 */
export function syntheticWeights(
  gpu: Gpu,
  config: LlamaConfig,
  seed: number,
  storage: WeightStorage = "f32",
): Weights {
  const weights: Weights = new Map();
  const rec = new Recorder(gpu);
  for (const [name, shape] of expectedTensors(config)) {
    const n = numelOf(shape);
    const packed = storage === "bf16" && !isNormWeight(name);
    const buf = createBuffer(gpu, packed ? packedBf16Bytes(n) : n * 4, name);
    elementCounts.set(buf, n);
    weights.set(name, buf);
    if (isNormWeight(name)) fillConst(rec, buf, n, 1);
    else if (!packed) fillNormal(rec, buf, n, tensorSeed(seed, name), 0.02);
    else {
      packedBuffers.add(buf);
      const tmp = createBuffer(gpu, n * 4, `${name} (f32 draw)`);
      fillNormal(rec, tmp, n, tensorSeed(seed, name), 0.02);
      packBf16Gpu(rec, tmp, buf, n);
      void rec.submit();
      tmp.destroy(); // freed once the submission that reads it is done
    }
  }
  void rec.submit();
  return weights;
}

/**
 * Reads every weight back to the host as f32, one tensor at a time (packed BF16 widened
 * exactly). Lengths come from `config` when given, else from the buffers' recorded sizes
 * (buffers made here), else from the buffer size.
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
    const packed = isPackedBf16(buf);
    const n = shape ? numelOf(shape) : elementCounts.get(buf) ?? buf.size / 4;
    const bytes = packed ? packedBf16Bytes(n) : n * 4;
    if (bytes > buf.size) {
      throw new RangeError(
        `readWeightsToHost: ${name} needs ${bytes} bytes, buffer has ${buf.size}`,
      );
    }
    const rec = new Recorder(gpu);
    const p = rec.read(buf, 0, bytes);
    await rec.submit();
    out.set(name, packed ? unpackBf16(new Uint32Array(await p), n) : new Float32Array(await p));
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
  await atomicWriteFile(
    `${dir}/config.json`,
    JSON.stringify(json, null, 2) + "\n",
  );
}

/** Convenience: the config and weights of an HF directory. */
export async function loadModelDir(
  gpu: Gpu,
  dir: string,
  onProgress?: (p: LoadProgress) => void,
  opts: LoadOptions = {},
): Promise<{ config: LlamaConfig; weights: Weights }> {
  const config = await loadLlamaConfig(dir);
  return { config, weights: await loadWeights(gpu, dir, config, onProgress, opts) };
}
