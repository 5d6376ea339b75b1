/**
 * One optimizer step over one or more micro-batches: the training step of every kind (sft,
 * tiny-pretrain, lsp, grpo) and of the training benchmark.
 *
 * Per micro-batch: a forward submission ending in one readback of the per-token log-probs; the
 * caller's loss turns them into (loss, dlogp) on the host; a second submission runs the backward
 * (gradients accumulate across micro-batches) and, for the last micro-batch, the AdamW step.
 * So a step costs 2 submissions and 2 round trips per micro-batch (the last one also returns
 * the gradient norm).
 *
 * Where the forward runs is the caller's choice ({@link PassProvider}): one planned pass reused
 * for micro-batches of one shape (sft), or a pass planned per micro-batch for its own padded
 * shape and freed after its backward (RL rollouts of mixed lengths).
 *
 * @module
 */
import { uploadBuffer } from "../../gpu/buffers.ts";
import { Recorder } from "../../gpu/recorder.ts";
import { ForwardPass, type ForwardPassOptions } from "../model/forward.ts";
import type { LlamaModel } from "../model/llama.ts";
import type { AdamW, StepReport } from "./optimizer.ts";

/** Token layout of one micro-batch (see batch.ts). */
export interface MicroBatch {
  tokens: Uint32Array;
  targets: Uint32Array;
}

/** A micro-batch that knows its padded shape (a {@link PackedBatch} is one). */
export interface ShapedMicroBatch extends MicroBatch {
  batch: number;
  seqLen: number;
}

/** The loss of one micro-batch from its log-probs: the value and d loss / d logp. */
export type MicroLoss<M extends MicroBatch> = (
  logp: Float32Array,
  micro: M,
  index: number,
) => { loss: number; dlogp: Float32Array };

/** Gives each micro-batch the forward pass it runs in, and takes it back after its backward. */
export interface PassProvider<M extends MicroBatch> {
  acquire(micro: M): ForwardPass;
  release(pass: ForwardPass): void;
}

/** Every micro-batch runs in `pass` (planned once for their common shape; the caller owns it). */
export function reusedPass<M extends MicroBatch>(pass: ForwardPass): PassProvider<M> {
  return { acquire: () => pass, release: () => {} };
}

/** Each micro-batch gets a pass planned for its own shape, freed after its backward. */
export function passPerMicroBatch<M extends ShapedMicroBatch>(
  model: LlamaModel,
  opts: ForwardPassOptions = {},
): PassProvider<M> {
  return {
    acquire: (mb) => new ForwardPass(model, mb.batch, mb.seqLen, opts),
    release: (pass) => pass.destroy(),
  };
}

/** What a step returns: the summed loss and the optimizer's report. */
export interface TrainStepResult extends StepReport {
  loss: number;
  /** Per micro-batch log-probs as read back (for metrics). */
  logps: Float32Array[];
}

/**
 * Runs forward, loss, backward for every micro-batch, then AdamW at `lr`. The losses must use
 * the whole step's normalizer so that summed gradients are the full-batch gradient.
 */
export async function trainStep<M extends MicroBatch>(
  passes: PassProvider<NoInfer<M>>,
  opt: AdamW,
  micro: readonly M[],
  lr: number,
  lossOf: MicroLoss<M>,
): Promise<TrainStepResult> {
  if (micro.length === 0) throw new Error("trainStep: no micro-batches");
  const gpu = opt.gpu;
  let loss = 0;
  let report: Promise<StepReport> | null = null;
  const logps: Float32Array[] = [];
  for (let k = 0; k < micro.length; k++) {
    const pass = passes.acquire(micro[k]);
    try {
      const rows = pass.B * pass.S;
      const fwd = new Recorder(gpu);
      const out = pass.forwardLogprobs(fwd, micro[k].tokens, micro[k].targets);
      const read = fwd.read(out.logp, 0, rows * 4);
      await fwd.submit();
      const logp = new Float32Array(await read);
      logps.push(logp);
      const l = lossOf(logp, micro[k], k);
      if (l.dlogp.length !== rows) {
        throw new Error(`trainStep: dlogp has ${l.dlogp.length} values, want ${rows}`);
      }
      loss += l.loss;
      const bwd = new Recorder(gpu);
      if (k === 0) opt.zeroGrads(bwd);
      const dlogp = uploadBuffer(gpu, l.dlogp, "train.dlogp");
      try {
        pass.backward(bwd, dlogp, opt.grads);
        if (k === micro.length - 1) {
          report = opt.recordStep(bwd, lr);
          // Precision "bf16": the passes read packed copies of the updated masters.
          pass.model.packComputeCopies(bwd);
        }
        await bwd.submit();
      } finally {
        dlogp.destroy();
      }
    } finally {
      passes.release(pass);
    }
  }
  return { loss, logps, ...(await report!) };
}
