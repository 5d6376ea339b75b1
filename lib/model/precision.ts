/**
 * The `precision` manifest section of the kinds that train a policy (sft, tiny-pretrain, lsp,
 * grpo) and of the benchmarks that time one (bench-model, bench-train):
 * `precision: { weights: "f32" | "bf16" }`. "bf16" keeps f32 master weights and AdamW state and
 * gives every matrix a packed-BF16 compute copy that the passes read (LlamaModel.usePrecision).
 *
 * The section is optional and has no default object, so a manifest without it resolves exactly
 * as before (same manifest.json, so `repro` of older bundles is unaffected); absent means "f32".
 *
 * @module
 */
import { z } from "zod";

/** The precision a trained model computes in (see LlamaModel.usePrecision). */
export type WeightPrecision = "f32" | "bf16";

/** The precisions a manifest may name. */
export const WEIGHT_PRECISIONS = ["f32", "bf16"] as const;

/** The optional `precision` section. */
export const PrecisionSchema = z.strictObject({
  /** "f32" (default) or "bf16": packed-BF16 compute copies beside f32 master weights. */
  weights: z.enum(WEIGHT_PRECISIONS, {
    error: (iss) =>
      `must be "f32" or "bf16" (the weights the passes read; masters and optimizer state stay ` +
      `f32), got ${JSON.stringify(iss.input)}`,
  }).default("f32"),
}).optional();

/** The weight precision a parsed (possibly absent) `precision` section asks for. */
export function weightPrecisionOf(p: { weights: WeightPrecision } | undefined): WeightPrecision {
  return p?.weights ?? "f32";
}
