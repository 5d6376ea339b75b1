/**
 * The `bench-model` experiment kind: inference speed of a config with synthetic weights.
 * Prefill tokens/s (a generation of one new token: prefill and the first sample), decode
 * tokens/s (from the difference between generating `newTokens` and one token, so prefill time
 * cancels), kernel dispatches per decoded token and readbacks per generated sequence. All
 * figures are run-specific and go to bench.json (plus one timings.jsonl line per repeat).
 *
 * @module
 */
import { z } from "zod";
import { getGpu } from "../../gpu/device.ts";
import { median } from "../util/median.ts";
import { defineKind, type RunContext } from "../experiment/kind.ts";
import { LlamaModel } from "../model/llama.ts";
import type { LlamaConfig } from "../model/config.ts";
import { generate } from "../model/generate.ts";
import { ModelConfigField, resolveModelConfig } from "../model/config_field.ts";
import { type AdapterPeaks, adapterPeaks, fractionOf, PeaksField } from "./adapter_peaks.ts";
import type { BenchRow } from "./gpu_timing.ts";
import { decodeBytesPerStep, forwardFlopsPerToken } from "./model_costs.ts";
import { PrecisionSchema, weightPrecisionOf } from "../model/precision.ts";

/** Parameters of `bench-model`. */
export const BenchModelSchema = z.strictObject({
  /** Llama config: path to config.json (or its folder) or an inline object. */
  config: ModelConfigField,
  /** Sequences generated together. */
  batch: z.number().int().positive().default(1),
  /** Prompt length in tokens. */
  promptLen: z.number().int().positive().default(128),
  /** New tokens per sequence in the decode measurement (>= 2). */
  newTokens: z.number().int().min(2).default(64),
  /** Decode steps between readbacks. */
  readbackEvery: z.number().int().positive().default(8),
  /**
   * Decode segments pipelined with host encoding: "auto" (the adapter's default: on GPUs only),
   * "on", "off", or "both" (measured off then on in the same run, with the ratio).
   */
  pipelined: z.enum(["auto", "on", "off", "both"]).default("auto"),
  /** Untimed runs first (shader compilation, allocation). */
  warmup: z.number().int().min(0).default(1),
  /** Timed runs; the median is reported. */
  repeats: z.number().int().positive().default(3),
  /** Peaks to use instead of the table of known adapters (lib/bench/adapter_peaks.ts). */
  peaks: PeaksField,
  /** `{ weights: "bf16" }`: generate from packed-BF16 compute copies (absent: f32). */
  precision: PrecisionSchema,
});

/** Parsed `bench-model` parameters. */
export type BenchModelParams = z.output<typeof BenchModelSchema>;

/** What bench-model reports. */
export interface BenchModelResult {
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  dispatchesPerDecodedToken: number;
  readbacksPerSequence: number;
  /** Whether the decode segments were pipelined. */
  pipelined: boolean;
  parameters: number;
  seconds: { prefill: number; generate: number };
}

/** With `pipelined: "both"`: decode measured without and with pipelining in the same run. */
export interface PipeliningComparison {
  offDecodeTokensPerSecond: number;
  onDecodeTokensPerSecond: number;
  /** on / off. */
  ratio: number;
}

/** bench.json of bench-model: the figures and their fractions of the adapter's limits. */
export interface BenchModelReport extends BenchModelResult {
  peaks: AdapterPeaks;
  /**
   * Decode tokens/s if every step only read the weights and KV caches at the memory bandwidth
   * (null when the bandwidth is unknown), and the measured decode's fraction of it.
   */
  decodeCeilingTokensPerSecond: number | null;
  decodeFractionOfCeiling: number | null;
  /** Prefill flops/s (matrices and attention) as a fraction of the f32 peak. */
  prefillFractionOfF32Peak: number | null;
  /** Present with `pipelined: "both"` (the other figures are then the pipelined run's). */
  pipelining?: PipeliningComparison;
  table: BenchRow[];
}

/** Relates a bench-model result to the adapter's limits. */
export function benchModelReport(
  config: LlamaConfig,
  p: BenchModelParams,
  r: BenchModelResult,
  peaks: AdapterPeaks,
): BenchModelReport {
  const decodeCtx = p.promptLen + p.newTokens / 2;
  const bf16 = weightPrecisionOf(p.precision) === "bf16";
  const stepBytes = decodeBytesPerStep(config, p.batch, decodeCtx, bf16 ? 2 : 4);
  const ceiling = peaks.memoryGBps === null ? null : p.batch * peaks.memoryGBps * 1e9 / stepBytes;
  const decodeFraction = ceiling === null ? null : r.decodeTokensPerSecond / ceiling;
  const prefillGflops = r.prefillTokensPerSecond * forwardFlopsPerToken(config, p.promptLen / 2) /
    1e9;
  const prefillFraction = fractionOf(prefillGflops, peaks.f32Gflops);
  const shape = `batch ${p.batch}, prompt ${p.promptLen}${bf16 ? ", bf16 weights" : ""}`;
  return {
    ...r,
    peaks,
    decodeCeilingTokensPerSecond: ceiling,
    decodeFractionOfCeiling: decodeFraction,
    prefillFractionOfF32Peak: prefillFraction,
    table: [
      {
        case: `decode (${shape}, ${p.newTokens} new)`,
        value: r.decodeTokensPerSecond,
        unit: "tokens/s",
        fraction: decodeFraction,
        of: ceiling === null ? null : `bandwidth ceiling ${ceiling.toFixed(1)} tokens/s`,
      },
      {
        case: `prefill (${shape})`,
        value: r.prefillTokensPerSecond,
        unit: "tokens/s",
        fraction: prefillFraction,
        of: peaks.f32Gflops === null ? null : `f32 peak ${peaks.f32Gflops} GFLOP/s`,
      },
    ],
  };
}

/** Runs the benchmark on a model (exported for tests and the bench-train comparison). */
export async function benchModel(
  model: LlamaModel,
  p: BenchModelParams,
  seed: number,
  onRepeat?: (r: Record<string, number>) => Promise<void>,
  progress?: (label: string, done: number, total: number) => void,
  pipelined = p.pipelined === "auto" ? undefined : p.pipelined !== "off",
): Promise<BenchModelResult> {
  // Two generate calls (prefill only, then the full length) per warm-up round and repeat.
  const calls = 2 * (p.warmup + p.repeats);
  let called = 0;
  const tick = () => progress?.("bench-model: generating", ++called, calls);
  const V = model.config.vocabSize;
  // Prompts: a fixed pseudo-random token pattern (values do not affect speed).
  const prompts = Array.from(
    { length: p.batch },
    (_, b) => Array.from({ length: p.promptLen }, (_, i) => (seed + 7 * b + 13 * i) % V),
  );
  const opts = (n: number) => ({
    maxNewTokens: n,
    temperature: 1,
    topP: 1,
    seed,
    stream: 0,
    stopIds: [] as number[],
    readbackEvery: p.readbackEvery,
    pipelined,
  });
  const time = async (n: number) => {
    const t0 = performance.now();
    const r = await generate(model, prompts, opts(n));
    tick();
    return { seconds: (performance.now() - t0) / 1000, stats: r.stats };
  };
  for (let i = 0; i < p.warmup; i++) {
    await time(1);
    await time(p.newTokens);
  }
  const prefill: number[] = [], full: number[] = [];
  let dispatches = 0, readbacks = 0, piped = false;
  for (let i = 0; i < p.repeats; i++) {
    const a = await time(1);
    const b = await time(p.newTokens);
    prefill.push(a.seconds);
    full.push(b.seconds);
    dispatches = b.stats.dispatchesPerToken;
    readbacks = b.stats.readbacksPerSequence;
    piped = b.stats.pipelined;
    await onRepeat?.({ repeat: i, prefillSeconds: a.seconds, generateSeconds: b.seconds });
  }
  const tPre = median(prefill), tFull = median(full);
  return {
    prefillTokensPerSecond: (p.batch * p.promptLen) / tPre,
    decodeTokensPerSecond: (p.batch * (p.newTokens - 1)) / Math.max(tFull - tPre, 1e-9),
    dispatchesPerDecodedToken: dispatches,
    readbacksPerSequence: readbacks,
    pipelined: piped,
    parameters: model.paramCount(),
    seconds: { prefill: tPre, generate: tFull },
  };
}

async function run(ctx: RunContext, p: BenchModelParams): Promise<void> {
  const gpu = await getGpu();
  ctx.recordGpu(gpu.info);
  const config = await resolveModelConfig(p.config, "config");
  if (config.architecture !== "LlamaForCausalLM") {
    throw new Error(`config: bench-model needs a LlamaForCausalLM, got ${config.architecture}`);
  }
  ctx.log(`making synthetic weights (${config.numLayers} layers, hidden ${config.hiddenSize})`);
  const model = LlamaModel.synthetic(gpu, config, ctx.seed);
  model.usePrecision(weightPrecisionOf(p.precision));
  const measure = (q: BenchModelParams, pipelined?: boolean) =>
    benchModel(
      model,
      q,
      ctx.seed,
      (r) => ctx.appendJsonl("timings.jsonl", { ...r, pipelined }, { deterministic: false }),
      ctx.progress,
      pipelined,
    );
  // "both": off and on alternate repeat by repeat, so load changes on the machine hit both.
  const offRuns: BenchModelResult[] = [], onRuns: BenchModelResult[] = [];
  if (p.pipelined === "both") {
    for (let i = 0; i < p.repeats; i++) {
      const q = { ...p, repeats: 1, warmup: i === 0 ? p.warmup : 0 };
      offRuns.push(await measure(q, false));
      onRuns.push(await measure(q, true));
    }
  }
  const byDecode = (rs: BenchModelResult[]) =>
    rs.find((r) => r.decodeTokensPerSecond === median(rs.map((x) => x.decodeTokensPerSecond)))!;
  const off = offRuns.length > 0 ? byDecode(offRuns) : null;
  const main = onRuns.length > 0 ? byDecode(onRuns) : await measure(p);
  const result = benchModelReport(config, p, main, adapterPeaks(gpu.info, p.peaks));
  if (off) {
    result.pipelining = {
      offDecodeTokensPerSecond: off.decodeTokensPerSecond,
      onDecodeTokensPerSecond: main.decodeTokensPerSecond,
      ratio: main.decodeTokensPerSecond / off.decodeTokensPerSecond,
    };
    result.table[0].case += ", pipelined";
    result.table.splice(1, 0, {
      ...result.table[0],
      case: result.table[0].case.replace(", pipelined", ", not pipelined"),
      value: off.decodeTokensPerSecond,
      fraction: result.decodeCeilingTokensPerSecond === null
        ? null
        : off.decodeTokensPerSecond / result.decodeCeilingTokensPerSecond,
    });
    ctx.log(
      `decode without pipelining ${off.decodeTokensPerSecond.toFixed(1)} tok/s, with ` +
        `${main.decodeTokensPerSecond.toFixed(1)} tok/s (x${result.pipelining.ratio.toFixed(2)})`,
    );
  }
  ctx.log(
    `prefill ${result.prefillTokensPerSecond.toFixed(1)} tok/s, decode ` +
      `${result.decodeTokensPerSecond.toFixed(1)} tok/s, ${result.dispatchesPerDecodedToken} ` +
      `dispatches/token, ${result.readbacksPerSequence.toFixed(2)} readbacks/sequence` +
      (result.pipelined ? ", pipelined" : ""),
  );
  await ctx.writeFile("bench.json", JSON.stringify(result, null, 2) + "\n", {
    deterministic: false,
  });
}

/** The `bench-model` experiment kind. */
export const benchModelKind = defineKind({
  kind: "bench-model",
  description: "prefill/decode tokens per second, dispatches and readbacks of generation",
  schema: BenchModelSchema,
  inputs: (p) => (typeof p.config === "string" ? [p.config] : []),
  run,
});
