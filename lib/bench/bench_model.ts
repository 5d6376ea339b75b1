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
import { generate } from "../model/generate.ts";
import { ModelConfigField, resolveModelConfig } from "../model/config_field.ts";

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
  /** Untimed runs first (shader compilation, allocation). */
  warmup: z.number().int().min(0).default(1),
  /** Timed runs; the median is reported. */
  repeats: z.number().int().positive().default(3),
});

/** Parsed `bench-model` parameters. */
export type BenchModelParams = z.output<typeof BenchModelSchema>;

/** What bench-model reports. */
export interface BenchModelResult {
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  dispatchesPerDecodedToken: number;
  readbacksPerSequence: number;
  parameters: number;
  seconds: { prefill: number; generate: number };
}

/** Runs the benchmark on a model (exported for tests and the bench-train comparison). */
export async function benchModel(
  model: LlamaModel,
  p: BenchModelParams,
  seed: number,
  onRepeat?: (r: Record<string, number>) => Promise<void>,
  progress?: (label: string, done: number, total: number) => void,
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
  let dispatches = 0, readbacks = 0;
  for (let i = 0; i < p.repeats; i++) {
    const a = await time(1);
    const b = await time(p.newTokens);
    prefill.push(a.seconds);
    full.push(b.seconds);
    dispatches = b.stats.dispatchesPerToken;
    readbacks = b.stats.readbacksPerSequence;
    await onRepeat?.({ repeat: i, prefillSeconds: a.seconds, generateSeconds: b.seconds });
  }
  const tPre = median(prefill), tFull = median(full);
  return {
    prefillTokensPerSecond: (p.batch * p.promptLen) / tPre,
    decodeTokensPerSecond: (p.batch * (p.newTokens - 1)) / Math.max(tFull - tPre, 1e-9),
    dispatchesPerDecodedToken: dispatches,
    readbacksPerSequence: readbacks,
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
  const result = await benchModel(
    model,
    p,
    ctx.seed,
    (r) => ctx.appendJsonl("timings.jsonl", r, { deterministic: false }),
    ctx.progress,
  );
  ctx.log(
    `prefill ${result.prefillTokensPerSecond.toFixed(1)} tok/s, decode ` +
      `${result.decodeTokensPerSecond.toFixed(1)} tok/s, ${result.dispatchesPerDecodedToken} ` +
      `dispatches/token, ${result.readbacksPerSequence.toFixed(2)} readbacks/sequence`,
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
