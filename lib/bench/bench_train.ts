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
  const result = await benchTrain(
    model,
    p,
    ctx.seed,
    (r) => ctx.appendJsonl("timings.jsonl", r, { deterministic: false }),
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
