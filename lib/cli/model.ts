/**
 * `model <info|tokenize|logits|generate|grad|export>`: the engine, directly, and its exporter.
 *
 * Each subcommand takes `--model DIR` (an HF model folder) or `--synthetic CONFIG.json
 * [--seed S]` (random weights of that config's shapes made on the GPU, to run and time real
 * shapes with no weights at hand). Errors are one clear message and a non-zero exit (main.ts).
 *
 * @module
 */
import { UserError } from "../util/user_error.ts";
import { getGpu } from "../../gpu/device.ts";
import { uploadBuffer } from "../../gpu/buffers.ts";
import { Recorder } from "../../gpu/recorder.ts";
import {
  expectedTensors,
  type LlamaConfig,
  loadLlamaConfig,
  parseLlamaConfig,
} from "../model/config.ts";
import { openCheckpoint } from "../model/safetensors/checkpoint_folder.ts";
import { writeSafetensors } from "../model/safetensors/write.ts";
import { LlamaModel } from "../model/llama.ts";
import { ForwardPass } from "../model/forward.ts";
import { generate } from "../model/generate.ts";
import { checkGenerationFits } from "../model/generation_limits.ts";
import { type ChatTokenizer, loadTokenizer } from "../model/tokenizer.ts";
import { type Command, parseCommandArgs, UsageError } from "./command.ts";

const USAGE = `Usage: deno task model <subcommand> [options]

Subcommands:
  info      --model DIR | --synthetic CONFIG.json
            config summary, parameter count, dtypes and bytes
  tokenize  --model DIR --text "..." [--chat]
            token ids as JSON (--chat: the text as one user turn through the chat template,
            with the generation prompt)
  logits    (--model DIR | --synthetic CONFIG.json [--seed S]) --tokens 1,2,3 --out FILE.safetensors
            one forward pass over exactly those tokens (no template, no BOS added); writes an
            F32 tensor "logits" of shape [T, vocab]
  generate  (--model DIR | --synthetic CONFIG.json) (--prompt "..." [--chat] | --tokens 1,2,3)
            [--n K] [--max-new-tokens N] [--temperature T] [--top-p P] [--seed S]
            [--readback-every K]
            K samples of one prompt (--prompt needs --model's tokenizer); prints one JSON
            line per sample and a stats line
            (defaults: --n 1, --max-new-tokens 64, --temperature 0.7, --top-p 0.9,
            --readback-every 8 decode steps between host readbacks)
  grad      (--model DIR | --synthetic CONFIG.json [--seed S]) --tokens 1,2,3,... --out FILE.safetensors
            gradient of the mean next-token NLL (position t predicts t+1) w.r.t. every
            parameter, F32, under HF names
  export    --model DIR [--format onnx] --out FILE.onnx [--dtype f32|f16] [--external-data]
            [--force]
            the model as ONNX (HF semantics; causal LMs with Optimum-style past_key_values
            inputs and present outputs, sequence classifiers with pooled logits); weights
            over 2 GB (or with --external-data) go to FILE.onnx_data beside it; --dtype f16
            stores the weight matrices as f16 (computed in f32); an existing FILE is refused
            unless --force

Options:
  --model DIR            HF model folder (config.json, safetensors, tokenizer files)
  --synthetic FILE       an HF config.json; random N(0, 0.02) weights (norms 1) made on the GPU
  --seed S               weight seed with --synthetic, and the sampling seed of generate (0)
  -h, --help             show this help`;

const OPTIONS = {
  model: { type: "string" },
  synthetic: { type: "string" },
  seed: { type: "string" },
  text: { type: "string" },
  chat: { type: "boolean" },
  tokens: { type: "string" },
  out: { type: "string" },
  prompt: { type: "string" },
  n: { type: "string" },
  "max-new-tokens": { type: "string" },
  temperature: { type: "string" },
  "top-p": { type: "string" },
  "readback-every": { type: "string" },
  format: { type: "string" },
  dtype: { type: "string" },
  "external-data": { type: "boolean" },
  force: { type: "boolean" },
} as const;

const SUBCOMMANDS = ["info", "tokenize", "logits", "generate", "grad", "export"] as const;
type Sub = (typeof SUBCOMMANDS)[number];

/** Which options each subcommand accepts (the others are refused by name). */
const ALLOWED: Record<Sub, string[]> = {
  info: ["model", "synthetic", "seed"],
  tokenize: ["model", "text", "chat"],
  logits: ["model", "synthetic", "seed", "tokens", "out"],
  generate: [
    "model",
    "synthetic",
    "seed",
    "prompt",
    "chat",
    "tokens",
    "n",
    "max-new-tokens",
    "temperature",
    "top-p",
    "readback-every",
  ],
  grad: ["model", "synthetic", "seed", "tokens", "out"],
  export: ["model", "format", "out", "dtype", "external-data", "force"],
};

type Values = Record<string, string | boolean | string[] | undefined>;

function str(v: Values, name: string): string | undefined {
  const x = v[name];
  return typeof x === "string" ? x : undefined;
}

function required(v: Values, name: string, sub: string): string {
  const x = str(v, name);
  if (x === undefined || x === "") {
    throw new UsageError(`model ${sub}: --${name} is required`, modelCommand);
  }
  return x;
}

function num(
  v: Values,
  name: string,
  def: number,
  opts: { int?: boolean; min?: number; max?: number },
): number {
  const s = str(v, name);
  if (s === undefined) return def;
  const x = Number(s);
  const bad = s.trim() === "" || !Number.isFinite(x) || (opts.int && !Number.isSafeInteger(x)) ||
    (opts.min !== undefined && x < opts.min) || (opts.max !== undefined && x > opts.max);
  if (bad) {
    const range = [
      opts.min !== undefined ? `>= ${opts.min}` : "",
      opts.max !== undefined ? `<= ${opts.max}` : "",
    ]
      .filter(Boolean).join(" and ");
    throw new UsageError(
      `--${name} must be ${opts.int ? "an integer" : "a number"}${
        range ? " " + range : ""
      }, got "${s}"`,
      modelCommand,
    );
  }
  return x;
}

/** Parses "--tokens 1,2,3" into ids, each checked against the vocabulary. */
function parseTokens(s: string, vocabSize: number): number[] {
  const parts = s.split(",").map((p) => p.trim());
  return parts.map((p, i) => {
    const x = Number(p);
    if (p === "" || !Number.isSafeInteger(x) || x < 0) {
      throw new UsageError(`--tokens: item ${i + 1} ("${p}") is not a token id`, modelCommand);
    }
    if (x >= vocabSize) {
      throw new UserError(
        `--tokens: id ${x} (item ${i + 1}) is outside the vocabulary 0..${vocabSize - 1}`,
      );
    }
    return x;
  });
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

/** The config named by --model or --synthetic (exactly one). */
async function configOf(
  v: Values,
  sub: string,
): Promise<{ config: LlamaConfig; dir: string | null }> {
  const dir = str(v, "model"), syn = str(v, "synthetic");
  if ((dir === undefined) === (syn === undefined)) {
    throw new UsageError(
      `model ${sub}: give exactly one of --model DIR and --synthetic CONFIG.json`,
      modelCommand,
    );
  }
  if (dir !== undefined) {
    if (!(await isDir(dir))) throw new UserError(`--model ${dir}: no such directory`);
    return { config: await loadLlamaConfig(dir), dir };
  }
  let text: string;
  try {
    text = await Deno.readTextFile(syn!);
  } catch (e) {
    throw new UserError(`--synthetic ${syn}: cannot read (${(e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${syn}: invalid JSON (${(e as Error).message})`);
  }
  return { config: parseLlamaConfig(json, syn!), dir: null };
}

/**
 * Runs one phase of a subcommand with progress on stderr: a line when it starts, another with
 * the elapsed time every 5 s while it runs (loading 3B weights or generating on a CPU adapter
 * takes minutes), and its duration when it ends. stdout stays the result alone.
 */
async function phase<T>(label: string, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const secs = () => ((performance.now() - t0) / 1000).toFixed(0);
  console.error(`${label}...`);
  const timer = setInterval(() => console.error(`${label}: ${secs()} s`), 5000);
  try {
    const value = await fn();
    console.error(`${label}: done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    return value;
  } finally {
    clearInterval(timer);
  }
}

async function modelOf(v: Values, sub: string): Promise<LlamaModel> {
  const { config, dir } = await configOf(v, sub);
  const gpu = await getGpu();
  const params = `${config.numLayers} layers, hidden ${config.hiddenSize}`;
  if (dir !== null) {
    return await phase(`loading ${dir} (${params})`, () => LlamaModel.load(gpu, dir));
  }
  return await phase(
    `making synthetic weights (${params})`,
    () =>
      Promise.resolve(
        LlamaModel.synthetic(gpu, config, num(v, "seed", 0, { int: true, min: 0 })),
      ),
  );
}

async function tokenizerOf(v: Values, sub: string): Promise<ChatTokenizer> {
  const dir = str(v, "model");
  if (dir === undefined) {
    throw new UsageError(
      `model ${sub}: text needs a tokenizer: give --model DIR (or --tokens with --synthetic)`,
      modelCommand,
    );
  }
  if (!(await isDir(dir))) throw new UserError(`--model ${dir}: no such directory`);
  return await loadTokenizer(dir);
}

function encodeText(tok: ChatTokenizer, text: string, chat: boolean): number[] {
  return chat
    ? tok.encodeChat([{ role: "user", content: text }], { addGenerationPrompt: true })
    : tok.encode(text);
}

async function info(v: Values): Promise<void> {
  const { config: c, dir } = await configOf(v, "info");
  const shapes = expectedTensors(c);
  let params = 0;
  for (const s of shapes.values()) params += s.reduce((a, b) => a * b, 1);
  const out: Record<string, unknown> = {
    source: dir ??
      `synthetic ${str(v, "synthetic")} (seed ${num(v, "seed", 0, { int: true, min: 0 })})`,
    architecture: c.architecture,
    vocabSize: c.vocabSize,
    hiddenSize: c.hiddenSize,
    intermediateSize: c.intermediateSize,
    numLayers: c.numLayers,
    numHeads: c.numHeads,
    numKvHeads: c.numKvHeads,
    headDim: c.headDim,
    ropeTheta: c.ropeTheta,
    ropeScaling: c.ropeScaling,
    tieWordEmbeddings: c.tieWordEmbeddings,
    maxPositionEmbeddings: c.maxPositionEmbeddings,
    tensors: shapes.size,
    parameters: params,
    gpuBytesF32: params * 4,
  };
  if (dir !== null) {
    const ck = await openCheckpoint(dir);
    const dtypes: Record<string, number> = {};
    let bytes = 0;
    for (const name of shapes.keys()) {
      const t = ck.tensors.get(name);
      if (!t) throw new UserError(`${dir}: tensor ${name} is missing from the checkpoint`);
      dtypes[t.info.dtype] = (dtypes[t.info.dtype] ?? 0) + 1;
      bytes += t.info.end - t.info.begin;
    }
    out.dtypes = dtypes;
    out.fileBytes = bytes;
    out.files = new Set([...ck.tensors.values()].map((t) => t.file.path)).size;
  } else {
    out.dtypes = { F32: shapes.size };
  }
  console.log(JSON.stringify(out, null, 2));
}

async function logits(v: Values): Promise<void> {
  const out = required(v, "out", "logits");
  const tokensArg = required(v, "tokens", "logits");
  const model = await modelOf(v, "logits");
  const c = model.config;
  const ids = parseTokens(tokensArg, c.vocabSize);
  const T = ids.length, V = c.vocabSize;
  const pass = new ForwardPass(model, 1, T, { forwardOnly: true });
  const rec = new Recorder(model.gpu);
  const buf = pass.forwardLogits(rec, Uint32Array.from(ids));
  const p = rec.read(buf, 0, T * V * 4);
  const data = await phase(`forward over ${T} tokens`, async () => {
    await rec.submit();
    return new Float32Array(await p);
  });
  await writeSafetensors(out, [{ name: "logits", dtype: "F32", shape: [T, V], data }]);
  console.log(`wrote ${out}: logits [${T}, ${V}] F32`);
}

async function grad(v: Values): Promise<void> {
  const out = required(v, "out", "grad");
  const tokensArg = required(v, "tokens", "grad");
  const model = await modelOf(v, "grad");
  const ids = parseTokens(tokensArg, model.config.vocabSize);
  const T = ids.length;
  if (T < 2) {
    throw new UsageError(
      "model grad: --tokens needs at least 2 tokens (t predicts t+1)",
      modelCommand,
    );
  }
  const gpu = model.gpu;
  const pass = new ForwardPass(model, 1, T);
  const grads = model.zeroGrads();
  const dlogp = new Float32Array(T);
  dlogp.fill(-1 / (T - 1), 0, T - 1); // d(mean NLL)/d logp[t]; the last row predicts nothing
  const rec = new Recorder(gpu);
  const { logp } = pass.forwardLogprobs(
    rec,
    Uint32Array.from(ids),
    Uint32Array.from([...ids.slice(1), 0]),
  );
  pass.backward(rec, uploadBuffer(gpu, dlogp, "grad.dlogp"), grads);
  const names = model.paramNames();
  const reads = names.map((n) => rec.read(grads.get(n)!, 0, model.paramNumel(n) * 4));
  const pl = rec.read(logp, 0, T * 4);
  await phase(`forward and backward over ${T} tokens`, () => rec.submit());
  const tensors = [];
  for (let i = 0; i < names.length; i++) {
    tensors.push({
      name: names[i],
      dtype: "F32" as const,
      shape: model.paramShape(names[i]),
      data: new Float32Array(await reads[i]),
    });
  }
  const lp = new Float32Array(await pl);
  let nll = 0;
  for (let t = 0; t < T - 1; t++) nll -= lp[t] / (T - 1);
  await writeSafetensors(out, tensors, { loss: String(nll) });
  console.log(`wrote ${out}: gradients of ${names.length} tensors; mean next-token NLL ${nll}`);
}

async function gen(v: Values): Promise<void> {
  const prompt = str(v, "prompt"), tokensArg = str(v, "tokens");
  if ((prompt === undefined) === (tokensArg === undefined)) {
    throw new UsageError("model generate: give exactly one of --prompt and --tokens", modelCommand);
  }
  if (v.chat && prompt === undefined) {
    throw new UsageError("model generate: --chat goes with --prompt", modelCommand);
  }
  const n = num(v, "n", 1, { int: true, min: 1 });
  const maxNewTokens = num(v, "max-new-tokens", 64, { int: true, min: 1 });
  const temperature = num(v, "temperature", 0.7, { min: 0 });
  const topP = num(v, "top-p", 0.9, { min: Number.MIN_VALUE, max: 1 });
  const seed = num(v, "seed", 0, { int: true, min: 0 });
  const readbackEvery = num(v, "readback-every", 8, { int: true, min: 1 });
  const tok = prompt !== undefined ? await tokenizerOf(v, "generate") : null;
  // Lengths first, from the config alone: a prompt past the model's positions (or buffers past
  // the device's bindings) is refused before any weights load.
  const { config } = await configOf(v, "generate");
  const ids = tok
    ? encodeText(tok, prompt!, Boolean(v.chat))
    : parseTokens(tokensArg!, config.vocabSize);
  const limits = (await getGpu()).device.limits;
  checkGenerationFits(config, limits.maxStorageBufferBindingSize, {
    promptLengths: Array.from({ length: n }, () => ids.length),
    maxNewTokens,
  }, "model generate");
  const model = await modelOf(v, "generate");
  const stopIds = tok ? tok.stopIds : model.config.eosTokenIds;
  const res = await phase(
    `generating ${n} sample${n > 1 ? "s" : ""} (prompt ${ids.length} tokens, up to ` +
      `${maxNewTokens} new)`,
    () =>
      generate(model, Array.from({ length: n }, () => ids), {
        maxNewTokens,
        temperature,
        topP,
        seed,
        stream: 0,
        stopIds,
        readbackEvery,
      }),
  );
  for (let i = 0; i < n; i++) {
    const line: Record<string, unknown> = { sample: i };
    if (tok) line.text = tok.decode(res.tokens[i], { skipSpecialTokens: true });
    line.tokens = res.tokens[i];
    line.logprobs = res.logprobs[i];
    line.stopped = res.stopped[i];
    console.log(JSON.stringify(line));
  }
  console.log(JSON.stringify({ promptTokens: ids.length, stats: res.stats }));
}

async function exportModel(v: Values): Promise<void> {
  const dir = required(v, "model", "export");
  const out = required(v, "out", "export");
  const format = str(v, "format") ?? "onnx";
  if (format !== "onnx") {
    throw new UsageError(
      `model export: --format "${format}" is not supported (onnx)`,
      modelCommand,
    );
  }
  const dtype = str(v, "dtype") ?? "f32";
  if (dtype !== "f32" && dtype !== "f16") {
    throw new UsageError(`model export: --dtype must be f32 or f16, got "${dtype}"`, modelCommand);
  }
  if (!(await isDir(dir))) throw new UserError(`--model ${dir}: no such directory`);
  // Loaded only here: the exporter brings the protobuf library.
  const { exportCheckpointOnnx } = await import("../onnx/export.ts");
  const r = await exportCheckpointOnnx(dir, out, {
    dtype,
    externalData: v["external-data"] ? true : "auto",
    overwrite: Boolean(v.force),
  });
  const data = r.dataPath ? ` + ${r.dataPath} (${r.dataBytes} bytes)` : "";
  console.log(
    `wrote ${r.path} (${r.bytes} bytes)${data}: ${r.architecture}, ${r.parameters} ` +
      `parameters, weights ${r.dtype}`,
  );
}

/** Runs `model <subcommand> ...`; returns the exit code (errors are thrown for main.ts). */
export async function runModelCommand(args: string[]): Promise<number> {
  const p = parseCommandArgs(modelCommand, args, OPTIONS, 0, 1);
  if (!p) return 0;
  const sub = p.positionals[0];
  if (sub === undefined) throw new UsageError("model: missing subcommand", modelCommand);
  if (!(SUBCOMMANDS as readonly string[]).includes(sub)) {
    throw new UsageError(
      `model: unknown subcommand "${sub}" (one of ${SUBCOMMANDS.join(", ")})`,
      modelCommand,
    );
  }
  const s = sub as Sub;
  for (const [k, val] of Object.entries(p.values)) {
    if (val !== undefined && k !== "help" && !ALLOWED[s].includes(k)) {
      throw new UsageError(`model ${s}: --${k} does not apply here`, modelCommand);
    }
  }
  const v = p.values;
  if (s === "info") await info(v);
  else if (s === "tokenize") {
    const text = str(v, "text"); // "" is a text too (it tokenizes to nothing, or a BOS)
    if (text === undefined) {
      throw new UsageError("model tokenize: --text is required", modelCommand);
    }
    console.log(
      JSON.stringify(encodeText(await tokenizerOf(v, "tokenize"), text, Boolean(v.chat))),
    );
  } else if (s === "logits") await logits(v);
  else if (s === "grad") await grad(v);
  else if (s === "export") await exportModel(v);
  else await gen(v);
  return 0;
}

/** The `model` command. */
export const modelCommand: Command = {
  name: "model",
  summary: "the engine directly: info, tokenize, logits, generate, grad, export",
  usage: USAGE,
  run: runModelCommand,
};
