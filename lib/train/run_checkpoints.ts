/**
 * A training kind's checkpoints inside its bundle, shared by `sft` (and `tiny-pretrain`) and the
 * RL kinds: which checkpoint a resumed run continues from, restoring the optimizer and the
 * training state from it, and saving new ones as deterministic bundle files.
 *
 * @module
 */
import { join } from "node:path";
import type { Gpu } from "../../gpu/device.ts";
import type { RunContext } from "../experiment/kind.ts";
import type { LlamaModel } from "../model/llama.ts";
import {
  type CheckpointWriter,
  latestCheckpoint,
  loadTrainCheckpoint,
  saveCheckpoint,
  type TrainState,
} from "./checkpoint.ts";
import type { AdamW } from "./optimizer.ts";

/** Where a bundle keeps its `step-N/` checkpoint folders. */
export const CHECKPOINTS_DIR = "checkpoints";

/** The latest complete checkpoint of the bundle when the run resumes, else null. */
export async function resumeCheckpoint(ctx: RunContext): Promise<string | null> {
  return ctx.resume ? await latestCheckpoint(join(ctx.bundleDir, CHECKPOINTS_DIR)) : null;
}

/** Loads AdamW's moments and step from checkpoint `dir` and returns its training state. */
export async function restoreTraining(dir: string, optimizer: AdamW): Promise<TrainState> {
  const ck = await loadTrainCheckpoint(dir);
  optimizer.loadState(ck.optimizer, ck.state.step, dir);
  return ck.state;
}

/** What a checkpoint holds besides the training state. */
export interface CheckpointParts {
  gpu: Gpu;
  model: LlamaModel;
  optimizer: AdamW;
  /** The folder whose tokenizer files each checkpoint copies. */
  tokenizerDir: string;
}

/** Saves `checkpoints/step-N/` (deterministic bundle files) for a state, and logs it. */
export function checkpointSaver(
  ctx: RunContext,
  parts: CheckpointParts,
): (state: TrainState) => Promise<void> {
  const writer: CheckpointWriter = {
    writeFileWith: (rel, write) => ctx.writeFileWith(rel, { deterministic: true }, write),
  };
  return async (state) => {
    const rel = await saveCheckpoint(writer, CHECKPOINTS_DIR, {
      gpu: parts.gpu,
      config: parts.model.config,
      weights: parts.model.weights,
      optimizer: parts.optimizer,
      state,
      tokenizerDir: parts.tokenizerDir,
    });
    ctx.log(`checkpoint ${rel}`);
  };
}
