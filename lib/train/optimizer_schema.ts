/**
 * The manifest section that configures AdamW and its learning-rate schedule, shared by every
 * training kind (sft, lsp, grpo).
 *
 * @module
 */
import { z } from "zod";

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
