/**
 * The registry of experiment kinds. To add one: import it and add it to {@link KINDS}.
 *
 * @module
 */
import { benchMatmulKind } from "../bench/bench_matmul.ts";
import { benchModelKind } from "../bench/bench_model.ts";
import { benchTrainKind } from "../bench/bench_train.ts";
import { gpuProbeKind } from "../probe/gpu_probe.ts";
import { tinyPretrainKind } from "../tinyworld/pretrain.ts";
import { sftKind } from "../train/sft.ts";
import { grpoKind, lspKind } from "../rl/kind.ts";
import type { ExperimentKind } from "./kind.ts";

/** Every experiment kind a manifest can name, in the order `list` shows them. */
export const KINDS: readonly ExperimentKind[] = [
  gpuProbeKind,
  sftKind,
  lspKind,
  grpoKind,
  tinyPretrainKind,
  benchModelKind,
  benchTrainKind,
  benchMatmulKind,
];

/** The kind called `name`, or undefined. */
export function findKind(name: string): ExperimentKind | undefined {
  return KINDS.find((k) => k.kind === name);
}
