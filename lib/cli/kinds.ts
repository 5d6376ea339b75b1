/**
 * The program's catalogue: every experiment kind a manifest can name, and the plug-ins they use
 * (the tiny world registers its datasets, query source, verifier reward and evaluation when its
 * plugin module loads). To add a kind: import it and add it to {@link KINDS}.
 *
 * @module
 */
import { benchAttentionKind } from "../bench/bench_attention.ts";
import { benchMatmulKind } from "../bench/bench_matmul.ts";
import { benchModelKind } from "../bench/bench_model.ts";
import { benchOnnxKind } from "../bench/bench_onnx.ts";
import { benchTrainKind } from "../bench/bench_train.ts";
import type { ExperimentKind } from "../experiment/kind.ts";
import { gpuProbeKind } from "../probe/gpu_probe.ts";
import { grpoKind, lspKind } from "../rl/rl_kinds.ts";
import { TINY_WORLD_KINDS } from "../tinyworld/plugin.ts";
import { sftKind } from "../train/sft.ts";
import { sweepKind } from "../sweep/sweep_kind.ts";
import { EXPERIMENTS_DIR, PROJECT_ROOT } from "../runner/project.ts";

/** Every experiment kind a manifest can name, in the order `list` shows them. */
export const KINDS: readonly ExperimentKind[] = [
  gpuProbeKind,
  sftKind,
  lspKind,
  grpoKind,
  ...TINY_WORLD_KINDS,
  benchModelKind,
  benchTrainKind,
  benchOnnxKind,
  benchMatmulKind,
  benchAttentionKind,
  // Built with the catalogue it draws its members' kinds from (lib/sweep imports no catalogue).
  sweepKind({ kinds: () => KINDS, experimentsDir: EXPERIMENTS_DIR, projectRoot: PROJECT_ROOT }),
];

/** The kind called `name`, or undefined. */
export function findKind(name: string): ExperimentKind | undefined {
  return KINDS.find((k) => k.kind === name);
}
