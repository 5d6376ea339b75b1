/**
 * Training checkpoints: `checkpoints/step-N/` holds the model in HF layout (config.json,
 * model.safetensors in F32, the tokenizer files copied from the source model) so `model ...`
 * and other tools load it directly, plus `optimizer.safetensors` (AdamW m and v per parameter),
 * `state.json` (step, RNG state, data position, lr schedule) and `SHA256SUMS` (sha256sum format,
 * sorted). Each file is written atomically and SHA256SUMS last: it marks the folder complete.
 * Files stream straight into their destination (no scratch copy), hashed as they are written;
 * the weights are read back from the GPU one tensor at a time.
 *
 * @module
 */
import { UserError } from "../util/user_error.ts";
import { createHash, type Hash } from "node:crypto";
import { basename, join } from "node:path";
import { atomicWriteWith } from "../util/atomic_write.ts";
import { hashFile } from "../util/hash_file.ts";
import { writeAll } from "../util/byte_sink.ts";
import { readJsonFile } from "../util/json_file.ts";
import type { Gpu } from "../../gpu/device.ts";
import { readF32 } from "../../gpu/buffers.ts";
import { expectedTensors, type LlamaConfig, toHfConfigJson } from "../model/config.ts";
import { SINGLE_FILE } from "../model/safetensors/checkpoint_folder.ts";
import { openSafetensors } from "../model/safetensors/header.ts";
import { readTensorF32 } from "../model/safetensors/read.ts";
import { type LazyTensorToWrite, writeSafetensorsTo } from "../model/safetensors/write.ts";
import type { Weights } from "../model/weights.ts";
import type { AdamW } from "./optimizer.ts";
import type { LrSchedule } from "./schedule.ts";
import { pathExists } from "../util/fs.ts";

/** Files copied from the source model folder when present. */
export const TOKENIZER_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "generation_config.json",
];

/** Everything besides tensors that a run needs to continue exactly. */
export interface TrainState {
  /** Completed optimizer steps. */
  step: number;
  /** Index of the next training example to read. */
  dataPosition: number;
  /** The run's RNG state (whatever the trainer uses), as JSON. */
  rng: unknown;
  /** The schedule; the lr of the next step is lrAt(lrSchedule, step + 1). */
  lrSchedule: LrSchedule;
  /** Trainer-specific extras (e.g. running metrics), as JSON. */
  extra?: Record<string, unknown>;
}

/** What {@link loadTrainCheckpoint} returns (the weights load with LlamaModel.load(dir)). */
export interface LoadedCheckpoint {
  dir: string;
  state: TrainState;
  optimizer: Map<string, { m: Float32Array; v: Float32Array }>;
}

const SUMS = "SHA256SUMS";

/** `step-N` folder name of a step. */
export function checkpointName(step: number): string {
  return `step-${step}`;
}

/**
 * Where checkpoint files go: a run's bundle (RunContext.writeFileWith, so the bundle registers
 * them) or a plain directory ({@link directoryWriter}). Paths are relative and '/'-separated.
 */
export interface CheckpointWriter {
  writeFileWith(relPath: string, write: (file: Deno.FsFile) => Promise<void>): Promise<void>;
}

/** A {@link CheckpointWriter} into a plain directory, each file written atomically. */
export function directoryWriter(root: string): CheckpointWriter {
  return { writeFileWith: (rel, write) => atomicWriteWith(join(root, rel), write) };
}

/** A file-like sink whose writes may be partial and return the count (Deno.FsFile's contract). */
interface PartialWriter {
  write(chunk: Uint8Array): Promise<number>;
}

/** A sink that forwards to a file and hashes exactly the bytes the file accepted. */
class HashingSink implements PartialWriter {
  readonly #file: Deno.FsFile;
  readonly hash: Hash = createHash("sha256");
  constructor(file: Deno.FsFile) {
    this.#file = file;
  }
  async write(chunk: Uint8Array): Promise<number> {
    const n = await this.#file.write(chunk);
    this.hash.update(chunk.subarray(0, n));
    return n;
  }
}

async function copyInto(src: string, dst: PartialWriter): Promise<void> {
  using f = await Deno.open(src, { read: true });
  const buf = new Uint8Array(1 << 20);
  for (;;) {
    const n = await f.read(buf);
    if (n === null) break;
    await writeAll(dst, buf.subarray(0, n));
  }
}

/**
 * The model's tensors for model.safetensors (F32, HF names), each read back from its GPU buffer
 * only when the writer reaches it. Every tensor the config implies must be present, and no other.
 */
function lazyWeights(
  gpu: Gpu,
  config: LlamaConfig,
  weights: Weights,
  where: string,
): LazyTensorToWrite[] {
  const want = expectedTensors(config);
  const out: LazyTensorToWrite[] = [];
  for (const [name, shape] of want) {
    const buf = weights.get(name);
    if (!buf) throw new Error(`${where}: tensor ${name} is missing from the weights`);
    const numel = shape.reduce((a, b) => a * b, 1);
    if (numel * 4 > buf.size) {
      throw new RangeError(`${where}: ${name} needs ${numel * 4} bytes, buffer has ${buf.size}`);
    }
    out.push({ name, dtype: "F32", shape, data: () => readF32(gpu, buf, numel) });
  }
  for (const name of weights.keys()) {
    if (!want.has(name)) throw new Error(`${where}: tensor ${name} is not part of this config`);
  }
  return out;
}

/**
 * Writes the checkpoint of `state.step` as `<prefix>/step-N/` through `writer` and returns that
 * relative path. Every file is written atomically and `SHA256SUMS` last, so a folder without it
 * (a crash mid-save) is incomplete and ignored by {@link latestCheckpoint}. Files stream
 * straight into the writer (hashed on the way), the weights one tensor at a time; the bytes are
 * those of saveWeights(dir, config, host, "F32") plus writeSafetensors for the optimizer.
 */
export async function saveCheckpoint(
  writer: CheckpointWriter,
  prefix: string,
  opts: {
    gpu: Gpu;
    config: LlamaConfig;
    weights: Weights;
    optimizer: AdamW;
    state: TrainState;
    /** Source model folder whose tokenizer files are copied (optional). */
    tokenizerDir?: string;
  },
): Promise<string> {
  if (opts.optimizer.step !== opts.state.step) {
    throw new Error(
      `checkpoint: optimizer is at step ${opts.optimizer.step} but state says ${opts.state.step}`,
    );
  }
  const rel = prefix
    ? `${prefix}/${checkpointName(opts.state.step)}`
    : checkpointName(opts.state.step);
  const enc = new TextEncoder();
  // Same bytes as saveWeights' config.json for F32 weights.
  const configJson = toHfConfigJson({ ...opts.config, torchDtype: "float32" });
  const weights = lazyWeights(opts.gpu, opts.config, opts.weights, `${rel}/${SINGLE_FILE}`);
  const files = new Map<string, (sink: PartialWriter) => Promise<void>>([
    ["config.json", (s) => writeAll(s, enc.encode(JSON.stringify(configJson, null, 2) + "\n"))],
    [SINGLE_FILE, async (s) => {
      await writeSafetensorsTo(s, weights, { format: "pt" }, `${rel}/${SINGLE_FILE}`);
    }],
    ["optimizer.safetensors", async (s) => {
      // AdamW gives its moments back all at once (readState); they are dropped after writing.
      const opt = await opts.optimizer.readState();
      const tensors = [];
      for (const [name, st] of opt) {
        tensors.push({ name: `m/${name}`, dtype: "F32" as const, shape: st.shape, data: st.m });
        tensors.push({ name: `v/${name}`, dtype: "F32" as const, shape: st.shape, data: st.v });
      }
      await writeSafetensorsTo(
        s,
        tensors,
        { step: String(opts.optimizer.step) },
        `${rel}/optimizer.safetensors`,
      );
    }],
    ["state.json", (s) => writeAll(s, enc.encode(JSON.stringify(opts.state, null, 2) + "\n"))],
  ]);
  if (opts.tokenizerDir) {
    for (const f of TOKENIZER_FILES) {
      const src = join(opts.tokenizerDir, f);
      if (await pathExists(src)) files.set(f, (s) => copyInto(src, s));
    }
  }
  let sums = "";
  for (const name of [...files.keys()].sort()) {
    let digest = "";
    await writer.writeFileWith(`${rel}/${name}`, async (file) => {
      const sink = new HashingSink(file);
      await files.get(name)!(sink);
      digest = sink.hash.digest("hex");
    });
    sums += `${digest}  ${name}\n`;
  }
  const sumBytes = enc.encode(sums);
  await writer.writeFileWith(`${rel}/${SUMS}`, (f) => writeAll(f, sumBytes));
  return rel;
}

/** Re-hashes a checkpoint folder against its SHA256SUMS; throws naming the first bad file. */
export async function verifyCheckpoint(dir: string): Promise<void> {
  let text: string;
  try {
    text = await Deno.readTextFile(join(dir, SUMS));
  } catch (e) {
    throw new UserError(`${dir}: cannot read ${SUMS} (${(e as Error).message})`);
  }
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const m = /^([0-9a-f]{64}) {2}(.+)$/.exec(line);
    if (!m || basename(m[2]) !== m[2]) throw new UserError(`${dir}/${SUMS}: bad line ${line}`);
    const got = (await hashFile(join(dir, m[2]))).sha256;
    if (got !== m[1]) throw new UserError(`${dir}/${m[2]}: sha256 ${got} does not match ${SUMS}`);
  }
}

/** Loads and verifies a checkpoint's training state and optimizer moments. */
export async function loadTrainCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  await verifyCheckpoint(dir);
  const statePath = join(dir, "state.json");
  const state = await readJsonFile(statePath) as TrainState;
  for (const k of ["step", "dataPosition"] as const) {
    if (!Number.isInteger(state[k]) || state[k] < 0) {
      throw new UserError(`${statePath}: ${k} must be a non-negative integer`);
    }
  }
  if (typeof state.lrSchedule !== "object" || state.lrSchedule === null) {
    throw new UserError(`${statePath}: lrSchedule is missing`);
  }
  const file = await openSafetensors(join(dir, "optimizer.safetensors"));
  const optimizer = new Map<string, { m: Float32Array; v: Float32Array }>();
  for (const name of [...file.tensors.keys()].sort()) {
    if (!name.startsWith("m/")) continue;
    const param = name.slice(2);
    if (!file.tensors.has(`v/${param}`)) {
      throw new UserError(`${file.path}: tensor v/${param} is missing`);
    }
    optimizer.set(param, {
      m: await readTensorF32(file, name),
      v: await readTensorF32(file, `v/${param}`),
    });
  }
  for (const name of file.tensors.keys()) {
    if (!/^[mv]\//.test(name) || !optimizer.has(name.slice(2))) {
      throw new UserError(`${file.path}: unexpected tensor ${name}`);
    }
  }
  return { dir, state, optimizer };
}

/** The complete checkpoint folder (one with SHA256SUMS) of the highest step under `root`, or null. */
export async function latestCheckpoint(root: string): Promise<string | null> {
  let best = -1;
  try {
    for await (const e of Deno.readDir(root)) {
      const m = /^step-(\d+)$/.exec(e.name);
      if (!e.isDirectory || !m || Number(m[1]) <= best) continue;
      if (await pathExists(join(root, e.name, SUMS))) best = Number(m[1]);
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  return best < 0 ? null : join(root, checkpointName(best));
}
