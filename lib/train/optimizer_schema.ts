/**
 * The manifest section that configures AdamW and its learning-rate schedule, shared by every
 * training kind (sft, tiny-pretrain, lsp, grpo), with the two things each of them builds from it:
 * the schedule over the run's steps and the optimizer over the model's trainable parameters.
 *
 * @module
 */
import { z } from "zod";
import type { Gpu } from "../../gpu/device.ts";
import type { LlamaModel } from "../model/llama.ts";
import { AdamW, trainableParams } from "./optimizer.ts";
import type { LrSchedule } from "./schedule.ts";

/** The `optimizer` section, with `lr` required (kinds may `.extend` it with a default). */
export const OptimizerSchema = z.strictObject({
  lr: z.number().positive(),
  schedule: z.enum(["constant", "cosine"]).default("constant"),
  warmupSteps: z.number().int().min(0).default(0),
  minLr: z.number().min(0).default(0),
  beta1: z.number().min(0).max(1).default(0.9),
  beta2: z.number().min(0).max(1).default(0.999),
  eps: z.number().positive().default(1e-8),
  weightDecay: z.number().min(0).default(0),
  /** Global gradient-norm clip (<= 0: off). */
  maxGradNorm: z.number().default(1),
});

/** A parsed `optimizer` section. */
export type OptimizerParams = z.output<typeof OptimizerSchema>;

/** The section's lr schedule over a run of `totalSteps` optimizer steps. */
export function scheduleOf(o: OptimizerParams, totalSteps: number): LrSchedule {
  return o.schedule === "constant" ? { kind: "constant", lr: o.lr, warmupSteps: o.warmupSteps } : {
    kind: "cosine",
    lr: o.lr,
    warmupSteps: o.warmupSteps,
    totalSteps,
    minLr: o.minLr,
  };
}

/** AdamW over every trainable parameter of `model`, configured by the section. */
export function adamwOf(gpu: Gpu, model: LlamaModel, o: OptimizerParams): AdamW {
  return new AdamW(gpu, trainableParams(model), {
    beta1: o.beta1,
    beta2: o.beta2,
    eps: o.eps,
    weightDecay: o.weightDecay,
    maxGradNorm: o.maxGradNorm,
  });
}
