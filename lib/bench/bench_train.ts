/**
 * The `bench-train` experiment kind: training tokens/s of a config with synthetic weights
 * (forward with log-prob readback, backward, AdamW: one full step) and its ratio to forward-only
 * tokens/s (forward with the same readback) for the same batch. Results are run-specific:
 * bench.json plus one timings.jsonl line per repeat.
 *
 * @module
 */
import { z } from "zod";
import { getGpu } from "../../gpu/device.ts";
import { median } from "../util/median.ts";
import { Recorder } from "../../gpu/recorder.ts";
import { defineKind, type RunContext } from "../experiment/kind.ts";
import { LlamaModel } from "../model/llama.ts";
import { ForwardPass } from "../model/forward.ts";
import { meanNll } from "../train/losses.ts";
import { AdamW, trainableParams } from "../train/optimizer.ts";
import { reusedPass, trainStep } from "../train/step.ts";
import { ModelConfigField, resolveModelConfig } from "../model/config_field.ts";
import type { LlamaConfig } from "../model/config.ts";
import { type AdapterPeaks, adapterPeaks, fractionOf, PeaksField } from "./adapter_peaks.ts";
import type { BenchRow } from "./gpu_timing.ts";
import { forwardFlopsPerToken } from "./model_costs.ts";
import { PrecisionSchema, weightPrecisionOf } from "../model/precision.ts";

/** Parameters of `bench-train`. */
export const BenchTrainSchema = z.strictObject({
  /** Llama config: path to config.json (or its folder) or an inline object. */
  config: ModelConfigField,
  /** Sequences per step. */
  batch: z.number().int().positive().default(4),
  /** Tokens per sequence. */
  seqLen: z.number().int().min(2).default(128),
  /** Per-layer activation recomputation in the backward. */
  recompute: z.boolean().default(false),
  /** Untimed steps first. */
  warmup: z.number().int().min(0).default(1),
  /** Timed steps of each kind; medians are reported. */
  repeats: z.number().int().positive().default(3),
  /** Peaks to use instead of the table of known adapters (lib/bench/adapter_peaks.ts). */
  peaks: PeaksField,
  /** `{ weights: "bf16" }`: train through packed-BF16 compute copies of f32 masters. */
  precision: PrecisionSchema,
});

/** Parsed `bench-train` parameters. */
export type BenchTrainParams = z.output<typeof BenchTrainSchema>;

/** What bench-train reports. */
export interface BenchTrainResult {
  forwardTokensPerSecond: number;
  trainTokensPerSecond: number;
  /** trainTokensPerSecond / forwardTokensPerSecond. */
  trainToForwardRatio: number;
  tokensPerStep: number;
  parameters: number;
  seconds: { forward: number; train: number };
}

/** bench.json of bench-train: the figures and their fractions of the adapter's f32 peak. */
export interface BenchTrainReport extends BenchTrainResult {
  peaks: AdapterPeaks;
  /**
   * Model flops/s over the f32 peak: a forward counts forwardFlopsPerToken, a training step three
   * times that (forward, input and weight gradients; recomputation not counted).
   */
  forwardFractionOfF32Peak: number | null;
  trainFractionOfF32Peak: number | null;
  table: BenchRow[];
}

/** Relates a bench-train result to the adapter's f32 peak. */
export function benchTrainReport(
  config: LlamaConfig,
  p: BenchTrainParams,
  r: BenchTrainResult,
  peaks: AdapterPeaks,
): BenchTrainReport {
  const perToken = forwardFlopsPerToken(config, p.seqLen / 2);
  const fwd = fractionOf(r.forwardTokensPerSecond * perToken / 1e9, peaks.f32Gflops);
  const train = fractionOf(r.trainTokensPerSecond * 3 * perToken / 1e9, peaks.f32Gflops);
  const of = peaks.f32Gflops === null ? null : `f32 peak ${peaks.f32Gflops} GFLOP/s`;
  const bf16 = weightPrecisionOf(p.precision) === "bf16";
  const shape = `batch ${p.batch} x ${p.seqLen}${p.recompute ? ", recompute" : ""}${
    bf16 ? ", bf16 weights" : ""
  }`;
  return {
    ...r,
    peaks,
    forwardFractionOfF32Peak: fwd,
    trainFractionOfF32Peak: train,
    table: [
      {
        case: `train step (${shape})`,
        value: r.trainTokensPerSecond,
        unit: "tokens/s",
        fraction: train,
        of,
      },
      {
        case: `forward (${shape})`,
        value: r.forwardTokensPerSecond,
        unit: "tokens/s",
        fraction: fwd,
        of,
      },
    ],
  };
}

/** Runs the benchmark on a model. The model's weights are updated by the timed steps. */
export async function benchTrain(
  model: LlamaModel,
  p: BenchTrainParams,
  seed: number,
  onRepeat?: (r: Record<string, number>) => Promise<void>,
): Promise<BenchTrainResult> {
  const gpu = model.gpu, B = p.batch, S = p.seqLen, V = model.config.vocabSize;
  const pass = new ForwardPass(model, B, S, { recompute: p.recompute });
  const opt = new AdamW(gpu, trainableParams(model), {
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weightDecay: 0,
    maxGradNorm: 1,
  });
  const tokens = new Uint32Array(B * S).map((_, i) => (seed + 31 * i + 7) % V);
  const targets = new Uint32Array(B * S).map((_, i) => tokens[(i + 1) % (B * S)]);
  const mask = new Float32Array(B * S).fill(1);
  const forward = async () => {
    const rec = new Recorder(gpu);
    const out = pass.forwardLogprobs(rec, tokens, targets);
    const read = rec.read(out.logp, 0, B * S * 4);
    await rec.submit();
    return new Float32Array(await read);
  };
  const step = () =>
    trainStep(
      reusedPass(pass),
      opt,
      [{ tokens, targets }],
      1e-5,
      (logp) => meanNll(logp, mask, B, S),
    );
  const timed = async <T>(fn: () => Promise<T>) => {
    const t0 = performance.now();
    const r = await fn();
    return { seconds: (performance.now() - t0) / 1000, r };
  };
  for (let i = 0; i < p.warmup; i++) {
    await forward();
    await step();
  }
  const fwd: number[] = [], train: number[] = [];
  for (let i = 0; i < p.repeats; i++) {
    const a = await timed(forward);
    const b = await timed(step);
    fwd.push(a.seconds);
    train.push(b.seconds);
    await onRepeat?.({ repeat: i, forwardSeconds: a.seconds, trainSeconds: b.seconds });
  }
  opt.destroy();
  const tF = median(fwd), tT = median(train), n = B * S;
  return {
    forwardTokensPerSecond: n / tF,
    trainTokensPerSecond: n / tT,
    trainToForwardRatio: tF / tT,
    tokensPerStep: n,
    parameters: model.paramCount(),
    seconds: { forward: tF, train: tT },
  };
}

async function run(ctx: RunContext, p: BenchTrainParams): Promise<void> {
  const gpu = await getGpu();
  ctx.recordGpu(gpu.info);
  const config = await resolveModelConfig(p.config, "config");
  if (config.architecture !== "LlamaForCausalLM") {
    throw new Error(`config: bench-train needs a LlamaForCausalLM, got ${config.architecture}`);
  }
  const model = LlamaModel.synthetic(gpu, config, ctx.seed);
  model.usePrecision(weightPrecisionOf(p.precision));
  const result = benchTrainReport(
    config,
    p,
    await benchTrain(
      model,
      p,
      ctx.seed,
      (r) => ctx.appendJsonl("timings.jsonl", r, { deterministic: false }),
    ),
    adapterPeaks(gpu.info, p.peaks),
  );
  ctx.log(
    `forward ${result.forwardTokensPerSecond.toFixed(1)} tok/s, train ` +
      `${result.trainTokensPerSecond.toFixed(1)} tok/s (ratio ${
        result.trainToForwardRatio.toFixed(3)
      })`,
  );
  await ctx.writeFile("bench.json", JSON.stringify(result, null, 2) + "\n", {
    deterministic: false,
  });
}

/** The `bench-train` experiment kind. */
export const benchTrainKind = defineKind({
  kind: "bench-train",
  description: "training tokens per second and its ratio to forward-only tokens per second",
  schema: BenchTrainSchema,
  inputs: (p) => (typeof p.config === "string" ? [p.config] : []),
  run,
});
