/**
 * One optimizer step over one or more micro-batches, shared by SFT, RL and the benchmarks.
 *
 * Per micro-batch: a forward submission ending in one readback of the per-token log-probs; the
 * caller's loss turns them into (loss, dlogp) on the host; a second submission runs the backward
 * (gradients accumulate across micro-batches) and, for the last micro-batch, the AdamW step.
 * So a step costs 2 submissions and 2 round trips per micro-batch (the last one also returns
 * the gradient norm).
 *
 * @module
 */
import { uploadBuffer } from "../../gpu/buffers.ts";
import { Recorder } from "../../gpu/recorder.ts";
import type { ForwardPass } from "../model/forward.ts";
import type { AdamW, StepReport } from "./optimizer.ts";

/** Token layout of one micro-batch (see batch.ts). */
export interface MicroBatch {
  tokens: Uint32Array;
  targets: Uint32Array;
}

/** The loss of one micro-batch from its log-probs: the value and d loss / d logp. */
export type MicroLoss<M extends MicroBatch> = (
  logp: Float32Array,
  micro: M,
  index: number,
) => { loss: number; dlogp: Float32Array };

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
  pass: ForwardPass,
  opt: AdamW,
  micro: M[],
  lr: number,
  lossOf: MicroLoss<M>,
): Promise<TrainStepResult> {
  if (micro.length === 0) throw new Error("trainStep: no micro-batches");
  const gpu = opt.gpu, rows = pass.B * pass.S;
  let loss = 0;
  let report: Promise<StepReport> | null = null;
  const logps: Float32Array[] = [];
  for (let k = 0; k < micro.length; k++) {
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
    pass.backward(bwd, dlogp, opt.grads);
    if (k === micro.length - 1) report = opt.recordStep(bwd, lr);
    await bwd.submit();
    dlogp.destroy();
  }
  return { loss, logps, ...(await report!) };
}
