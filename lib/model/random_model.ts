/**
 * Random Llama checkpoints on disk, for tests: a tiny config and a writer that produces a
 * complete HF directory (config.json plus one or several safetensors files and their index),
 * byte-for-byte deterministic for a given config, dtype, shard count and seed.
 *
 * Values: matrices N(0, std^2); norm weights 1 + N(0, std^2) (not exactly ones, so that tests
 * notice a norm weight being ignored). Each tensor's stream is keyed by (seed, tensor name), the
 * same counter-based normal as gpu/init.ts, so adding a tensor never changes the others.
 *
 * @module
 */
import { expectedTensors, isNormWeight, type LlamaConfig, toHfConfigJson } from "./config.ts";
import { atomicWriteFile } from "../util/atomic_write.ts";
import { INDEX_FILE, SINGLE_FILE } from "./safetensors/checkpoint_folder.ts";
import { type Dtype, DTYPE_BYTES } from "./safetensors/format.ts";
import { type TensorToWrite, writeSafetensors } from "./safetensors/write.ts";
import { hashString, mix32, normalAt } from "../../gpu/init.ts";

/** A tiny Llama config for tests (vocab 64, hidden 32, 2 layers, 4 heads, 2 kv heads). */
export function tinyTestConfig(overrides: Partial<LlamaConfig> = {}): LlamaConfig {
  return {
    architecture: "LlamaForCausalLM",
    vocabSize: 64,
    hiddenSize: 32,
    intermediateSize: 48,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 8,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    maxPositionEmbeddings: 128,
    tieWordEmbeddings: false,
    bosTokenId: 1,
    eosTokenIds: [2],
    padTokenId: null,
    numLabels: 1,
    torchDtype: "float32",
    ...overrides,
  };
}

/** The seed of one tensor's stream: (model seed, tensor name) hashed together. */
export function tensorSeed(seed: number, name: string): number {
  return mix32((mix32(seed >>> 0) ^ hashString(name)) >>> 0);
}

/** The values {@link writeRandomModel} draws for one tensor (before narrowing to its dtype). */
export function randomTensor(name: string, numel: number, seed: number, std = 0.02): Float32Array {
  const s = tensorSeed(seed, name);
  const mean = isNormWeight(name) ? 1 : 0;
  const out = new Float32Array(numel);
  for (let i = 0; i < numel; i++) out[i] = mean + std * normalAt(s, i);
  return out;
}

/** Options of {@link writeRandomModel}. */
export interface RandomModelOptions {
  dtype: Dtype;
  /** Number of shard files (default 1: a single model.safetensors, no index). */
  shards?: number;
  seed: number;
  /** Standard deviation of the values (default 0.02). */
  std?: number;
}

/** Shard file name in HF's pattern, e.g. model-00001-of-00003.safetensors. */
export function shardName(i: number, n: number): string {
  const pad = (x: number) => String(x).padStart(5, "0");
  return `model-${pad(i + 1)}-of-${pad(n)}.safetensors`;
}

/**
 * Writes a random checkpoint for `config` into `dir` (created if needed): config.json and
 * model.safetensors, or `shards` files plus model.safetensors.index.json. Deterministic.
 */
export async function writeRandomModel(
  dir: string,
  config: LlamaConfig,
  opts: RandomModelOptions,
): Promise<void> {
  const shards = opts.shards ?? 1;
  if (!Number.isSafeInteger(shards) || shards < 1) {
    throw new RangeError(`writeRandomModel: shards must be a positive integer, got ${shards}`);
  }
  const std = opts.std ?? 0.02;
  await Deno.mkdir(dir, { recursive: true });
  const shapes = [...expectedTensors(config)];
  if (shards > shapes.length) {
    throw new RangeError(`writeRandomModel: ${shards} shards for only ${shapes.length} tensors`);
  }
  const eb = DTYPE_BYTES[opts.dtype];
  const bytesOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1) * eb;
  const totalSize = shapes.reduce((a, [, s]) => a + bytesOf(s), 0);
  // Contiguous groups in model order, cut when a group reaches its share of the bytes, leaving
  // at least one tensor for every remaining shard.
  const groups: (typeof shapes)[] = [];
  let cur: typeof shapes = [], curBytes = 0;
  for (let i = 0; i < shapes.length; i++) {
    cur.push(shapes[i]);
    curBytes += bytesOf(shapes[i][1]);
    const left = shapes.length - i - 1, shardsLeft = shards - groups.length - 1;
    if (shardsLeft > 0 && (curBytes >= totalSize / shards || left === shardsLeft)) {
      groups.push(cur);
      cur = [];
      curBytes = 0;
    }
  }
  groups.push(cur);
  const meta = { format: "pt" };
  const toWrite = (group: typeof shapes): TensorToWrite[] =>
    group.map(([name, shape]) => ({
      name,
      dtype: opts.dtype,
      shape,
      data: randomTensor(name, shape.reduce((a, b) => a * b, 1), opts.seed, std),
    }));
  const torchDtype = { F32: "float32", F16: "float16", BF16: "bfloat16" }[opts.dtype];
  if (shards === 1) {
    await writeSafetensors(`${dir}/${SINGLE_FILE}`, toWrite(groups[0]), meta);
  } else {
    const weightMap: Record<string, string> = {};
    for (let g = 0; g < groups.length; g++) {
      const file = shardName(g, shards);
      await writeSafetensors(`${dir}/${file}`, toWrite(groups[g]), meta);
      for (const [name] of groups[g]) weightMap[name] = file;
    }
    const sortedMap: Record<string, string> = {};
    for (const k of Object.keys(weightMap).sort()) sortedMap[k] = weightMap[k];
    const index = { metadata: { total_size: totalSize }, weight_map: sortedMap };
    await atomicWriteFile(
      `${dir}/${INDEX_FILE}`,
      JSON.stringify(index, null, 2) + "\n",
    );
  }
  const hf = toHfConfigJson({ ...config, torchDtype });
  await atomicWriteFile(
    `${dir}/config.json`,
    JSON.stringify(hf, null, 2) + "\n",
  );
}
