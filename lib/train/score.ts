/**
 * Per-token log-probabilities of given completions under a model (policy or frozen reference):
 * one forward submission and one readback for a packed batch, then the scored positions picked
 * out per sequence. With row-invariant kernels these equal the log-probs generation reported
 * for the same tokens, bit for bit.
 *
 * @module
 */
import { Recorder } from "../../gpu/recorder.ts";
import { ForwardPass } from "../model/forward.ts";
import type { LlamaModel } from "../model/llama.ts";
import type { PackedBatch } from "./batch.ts";

/** Log-prob of every target of a packed batch, [B*S] (padding positions hold junk). */
export async function forwardLogp(pass: ForwardPass, packed: PackedBatch): Promise<Float32Array> {
  if (packed.batch !== pass.B || packed.seqLen !== pass.S) {
    throw new Error(
      `forwardLogp: batch is ${packed.batch}x${packed.seqLen}, the pass is planned for ` +
        `${pass.B}x${pass.S}`,
    );
  }
  const rec = new Recorder(pass.model.gpu);
  const out = pass.forwardLogprobs(rec, packed.tokens, packed.targets);
  const read = rec.read(out.logp, 0, pass.B * pass.S * 4);
  await rec.submit();
  return new Float32Array(await read);
}

/**
 * Log-prob of every target of a packed batch under `model` in a pass planned for the batch's own
 * shape and freed afterwards: how a frozen model (the KL reference) scores sequences.
 */
export async function scoreLogp(model: LlamaModel, packed: PackedBatch): Promise<Float32Array> {
  // Forward-only: one layer's activations, not one set per layer (nothing is differentiated).
  const pass = new ForwardPass(model, packed.batch, packed.seqLen, { forwardOnly: true });
  try {
    return await forwardLogp(pass, packed);
  } finally {
    pass.destroy();
  }
}

/** The scored (completion) log-probs of each sequence, in token order. */
export function completionLogprobs(packed: PackedBatch, logp: Float32Array): number[][] {
  const { batch: B, seqLen: S, mask } = packed;
  if (logp.length !== B * S) {
    throw new Error(`completionLogprobs: ${logp.length} log-probs for ${B}x${S} positions`);
  }
  const out: number[][] = [];
  for (let b = 0; b < B; b++) {
    const row: number[] = [];
    for (let t = 0; t < S; t++) if (mask[b * S + t] !== 0) row.push(logp[b * S + t]);
    out.push(row);
  }
  return out;
}
