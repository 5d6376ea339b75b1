/**
 * The `bench-onnx` experiment kind: the engine (WebGPU) and onnxruntime (its CPU execution
 * provider, through onnxruntime-node) on the same model, prompts and batch, in one run.
 *
 * The model is exported to ONNX from the weights the engine loaded (into a temporary folder,
 * removed afterwards), so both sides hold the same values. Per batch size: prefill tokens/s
 * (the prompts' run including the first greedy token) and greedy decode tokens/s (the later
 * tokens), medians over `repeats`, and their ratio engine / onnxruntime (above 1: the engine is
 * faster). The engine's prefill and decode are separated as bench-model does (a one-token
 * generation, then the difference to a `newTokens` one); onnxruntime's steps are timed directly.
 * Both sides also record whether their greedy tokens were identical and how far their logits on
 * the first prompt are apart (lib/onnx/parity.ts), so a speed is never quoted for a model that
 * computes something else. Every figure is run-specific (bench.json, timings.jsonl); the
 * adapter, the CPU, onnxruntime's version and threads and the machine's load average are in
 * bench.json.
 *
 * @module
 */
import { cpus } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { getGpu } from "../../gpu/device.ts";
import { median } from "../util/median.ts";
import { UserError } from "../util/user_error.ts";
import { Recorder } from "../../gpu/recorder.ts";
import { defineKind, type RunContext } from "../experiment/kind.ts";
import { LlamaModel } from "../model/llama.ts";
import { ForwardPass } from "../model/forward.ts";
import { generate } from "../model/generate.ts";
import { readWeightsToHost } from "../model/weights.ts";
import { relativeError } from "../onnx/parity.ts";
import {
  loadModelSource,
  modelSourceInputs,
  ModelSourceSchema,
  resolveModelSource,
} from "../data/model_source.ts";
import { resolveModelConfig } from "../model/config_field.ts";

/** Parameters of `bench-onnx`. */
export const BenchOnnxSchema = z.strictObject({
  /** The model: a bundle's latest checkpoint, a folder, or `synthetic` weights of a config. */
  model: ModelSourceSchema,
  /** Prompt length in tokens (every prompt of a batch has it). */
  promptLen: z.number().int().positive().default(64),
  /** Greedy tokens generated per sequence (>= 2: one from the prefill, the rest decoded). */
  newTokens: z.number().int().min(2).default(32),
  /** Batch sizes measured, each on both sides. */
  batches: z.array(z.number().int().positive()).min(1).default([1, 8]),
  /** The engine's decode steps between readbacks. */
  readbackEvery: z.number().int().positive().default(8),
  /** onnxruntime's intra-op threads; 0 = its default (one per physical core). */
  ortThreads: z.number().int().min(0).default(0),
  /** Untimed runs first (shader compilation, allocation, onnxruntime's first run). */
  warmup: z.number().int().min(0).default(1),
  /** Timed runs; the median is reported. */
  repeats: z.number().int().positive().default(3),
});

/** Parsed `bench-onnx` parameters. */
export type BenchOnnxParams = z.output<typeof BenchOnnxSchema>;

/** Speeds of one side at one batch size. */
export interface SideSpeed {
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  seconds: { prefill: number; decode: number };
}

/** One batch size's row of the comparison. */
export interface BenchOnnxRow {
  batch: number;
  engine: SideSpeed;
  onnxruntime: SideSpeed;
  /** engine / onnxruntime tokens per second (above 1: the engine is faster). */
  ratio: { prefill: number; decode: number };
  /** Whether both sides generated the same greedy tokens for every sequence. */
  greedyTokensMatch: boolean;
}

/** The prompts: a fixed pseudo-random token pattern (values do not affect speed). */
function benchPrompts(batch: number, len: number, vocab: number, seed: number): number[][] {
  return Array.from(
    { length: batch },
    (_, b) => Array.from({ length: len }, (_, i) => (seed + 7 * b + 13 * i + 3) % vocab),
  );
}

async function engineLogits(model: LlamaModel, ids: number[]): Promise<Float32Array> {
  const V = model.config.vocabSize, T = ids.length;
  const pass = new ForwardPass(model, 1, T);
  const rec = new Recorder(model.gpu);
  const buf = pass.forwardLogits(rec, Uint32Array.from(ids));
  const p = rec.read(buf, 0, T * V * 4);
  await rec.submit();
  const out = new Float32Array(await p);
  pass.destroy();
  return out;
}

async function loadEngineModel(ctx: RunContext, p: BenchOnnxParams) {
  const gpu = await getGpu();
  ctx.recordGpu(gpu.info);
  const r = resolveModelSource(p.model, "model");
  if (r.kind === "synthetic") {
    const config = await resolveModelConfig(p.model.synthetic!, "model.synthetic");
    return {
      model: LlamaModel.synthetic(gpu, config, p.model.seed),
      description: `synthetic (seed ${p.model.seed})`,
    };
  }
  const loaded = await loadModelSource(gpu, p.model, "model");
  if (loaded.bundle) await ctx.recordParent(loaded.bundle.dir);
  return { model: loaded.model, description: loaded.description };
}

async function run(ctx: RunContext, p: BenchOnnxParams): Promise<void> {
  // Other work on the machine slows both sides unevenly: the load is part of the figures.
  const loadAtStart = Deno.loadavg();
  const { model, description } = await loadEngineModel(ctx, p);
  const config = model.config;
  if (config.architecture !== "LlamaForCausalLM") {
    throw new UserError(`model: bench-onnx needs a LlamaForCausalLM, got ${config.architecture}`);
  }
  const maxLen = p.promptLen + p.newTokens;
  if (maxLen > config.maxPositionEmbeddings) {
    throw new UserError(
      `promptLen + newTokens = ${maxLen} exceeds the model's max_position_embeddings ` +
        `${config.maxPositionEmbeddings}`,
    );
  }
  // Both are loaded only by this kind: the exporter (protobufjs) and onnxruntime-node.
  const { exportLlamaOnnx } = await import("../onnx/export.ts");
  const { OrtLlama } = await import("../onnx/ort.ts");
  const tmp = await Deno.makeTempDir({ prefix: "bench-onnx-" });
  try {
    const t0 = performance.now();
    const exported = await exportLlamaOnnx(config, async (name) => {
      const host = await readWeightsToHost(model.gpu, new Map([[name, model.w(name)]]), config);
      return host.get(name)!;
    }, join(tmp, "model.onnx"));
    const exportSeconds = (performance.now() - t0) / 1000;
    ctx.log(
      `exported ${description} (${exported.parameters} parameters) to ONNX in ` +
        `${exportSeconds.toFixed(1)} s (${(exported.bytes + exported.dataBytes) / 1e6} MB)`,
    );
    const ort = await OrtLlama.open(exported.path, config, { intraOpThreads: p.ortThreads });
    try {
      const V = config.vocabSize;
      const first = benchPrompts(1, p.promptLen, V, ctx.seed)[0];
      const logitsRelativeError = relativeError(
        await ort.logits([first]),
        await engineLogits(model, first),
      );
      ctx.log(`logits on the first prompt: relative error ${logitsRelativeError.toExponential(2)}`);

      const rows: BenchOnnxRow[] = [];
      for (const batch of p.batches) {
        ctx.throwIfAborted();
        rows.push(await benchBatch(ctx, p, model, ort, batch));
      }
      const result = {
        model: description,
        parameters: model.paramCount(),
        config: {
          vocabSize: config.vocabSize,
          hiddenSize: config.hiddenSize,
          intermediateSize: config.intermediateSize,
          numLayers: config.numLayers,
          numHeads: config.numHeads,
          numKvHeads: config.numKvHeads,
          headDim: config.headDim,
        },
        promptLen: p.promptLen,
        newTokens: p.newTokens,
        engine: {
          adapter: model.gpu.info.description || model.gpu.info.device,
          kernels: model.gpu.info.kernels,
        },
        onnxruntime: {
          version: ort.ort.env.versions.common ?? "unknown",
          executionProvider: "cpu",
          intraOpThreads: p.ortThreads === 0 ? "default (one per physical core)" : p.ortThreads,
          exportedBytes: exported.bytes + exported.dataBytes,
          exportSeconds,
        },
        cpu: { model: cpus()[0]?.model ?? "unknown", logicalCores: cpus().length },
        loadAverage1m: { start: loadAtStart[0], end: Deno.loadavg()[0] },
        logitsRelativeError,
        rows,
      };
      ctx.log(table(rows));
      await ctx.writeFile("bench.json", JSON.stringify(result, null, 2) + "\n", {
        deterministic: false,
      });
    } finally {
      await ort.release();
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

async function benchBatch(
  ctx: RunContext,
  p: BenchOnnxParams,
  model: LlamaModel,
  ort: import("../onnx/ort.ts").OrtLlama,
  batch: number,
): Promise<BenchOnnxRow> {
  const prompts = benchPrompts(batch, p.promptLen, model.config.vocabSize, ctx.seed);
  const engineRun = async (n: number) => {
    const t = performance.now();
    const r = await generate(model, prompts, {
      maxNewTokens: n,
      temperature: 0,
      topP: 1,
      seed: ctx.seed,
      stream: 0,
      stopIds: [],
      readbackEvery: p.readbackEvery,
    });
    return { seconds: (performance.now() - t) / 1000, tokens: r.tokens };
  };
  const ortRun = () => ort.greedy(prompts, { maxNewTokens: p.newTokens, stopIds: [] });
  // Two engine tokens compile every prefill and decode shader; a full warm-up run would cost as
  // much as a timed one, which at 100M parameters on a CPU adapter is minutes.
  for (let i = 0; i < p.warmup; i++) {
    await engineRun(1);
    await engineRun(2);
    await ortRun();
  }
  const ePre: number[] = [], eFull: number[] = [], oPre: number[] = [], oDec: number[] = [];
  let match = true;
  for (let i = 0; i < p.repeats; i++) {
    ctx.throwIfAborted();
    const a = await engineRun(1);
    const b = await engineRun(p.newTokens);
    const o = await ortRun();
    ePre.push(a.seconds);
    eFull.push(b.seconds);
    oPre.push(o.prefillSeconds);
    oDec.push(o.decodeSeconds);
    match &&= JSON.stringify(b.tokens) === JSON.stringify(o.tokens);
    await ctx.appendJsonl("timings.jsonl", {
      batch,
      repeat: i,
      engine: { prefillSeconds: a.seconds, generateSeconds: b.seconds },
      onnxruntime: { prefillSeconds: o.prefillSeconds, decodeSeconds: o.decodeSeconds },
    }, { deterministic: false });
  }
  const prefillTokens = batch * p.promptLen, decodeTokens = batch * (p.newTokens - 1);
  const eP = median(ePre), eD = median(eFull) - eP;
  const oP = median(oPre), oD = median(oDec);
  if (!(eD > 0 && oD > 0)) {
    throw new UserError(
      `batch ${batch}: decode time not measurable (engine ${eD} s, onnxruntime ${oD} s): the ` +
        `engine's ${p.newTokens}-token generation took no longer than its 1-token one; raise ` +
        `newTokens, warmup or repeats`,
    );
  }
  const engine: SideSpeed = {
    prefillTokensPerSecond: prefillTokens / eP,
    decodeTokensPerSecond: decodeTokens / eD,
    seconds: { prefill: eP, decode: eD },
  };
  const onnxruntime: SideSpeed = {
    prefillTokensPerSecond: prefillTokens / oP,
    decodeTokensPerSecond: decodeTokens / oD,
    seconds: { prefill: oP, decode: oD },
  };
  return {
    batch,
    engine,
    onnxruntime,
    ratio: {
      prefill: engine.prefillTokensPerSecond / onnxruntime.prefillTokensPerSecond,
      decode: engine.decodeTokensPerSecond / onnxruntime.decodeTokensPerSecond,
    },
    greedyTokensMatch: match,
  };
}

/** The comparison as a text table (the run's log). */
export function table(rows: BenchOnnxRow[]): string {
  const f = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toPrecision(3));
  const head = [
    "batch",
    "engine prefill tok/s",
    "ort prefill tok/s",
    "ratio",
    "engine decode tok/s",
    "ort decode tok/s",
    "ratio",
    "same tokens",
  ];
  const lines = rows.map((r) => [
    String(r.batch),
    f(r.engine.prefillTokensPerSecond),
    f(r.onnxruntime.prefillTokensPerSecond),
    f(r.ratio.prefill),
    f(r.engine.decodeTokensPerSecond),
    f(r.onnxruntime.decodeTokensPerSecond),
    f(r.ratio.decode),
    r.greedyTokensMatch ? "yes" : "NO",
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i])).join("  ");
  return [fmt(head), fmt(widths.map((w) => "-".repeat(w))), ...lines.map(fmt)].join("\n");
}

/** The `bench-onnx` experiment kind. */
export const benchOnnxKind = defineKind({
  kind: "bench-onnx",
  description: "the engine against onnxruntime (CPU) on one model: prefill and decode tokens/s",
  schema: BenchOnnxSchema,
  inputs: (p) => modelSourceInputs(p.model, "model"),
  run,
});
