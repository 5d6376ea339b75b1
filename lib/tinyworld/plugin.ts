/**
 * Everything the tiny world adds to the program, in one place: its dataset generators (for
 * `sft`), its query source (for `grpo`), its exact verifier as a task reward, its held-out
 * evaluation of an RL run, and the `tiny-pretrain` kind. The generic parts (lib/train, lib/rl,
 * lib/rewards, lib/eval) know these only through their registries' interfaces; the program's
 * catalogue (lib/cli/kinds.ts) loads this module.
 *
 * @module
 */
import type { ExperimentKind } from "../experiment/kind.ts";
import { EVALUATIONS } from "../eval/evaluation.ts";
import { TASK_REWARDS } from "../rewards/reward.ts";
import { QUERY_SOURCES } from "../rl/query_source.ts";
import { QUALITY_ORACLES } from "../rl/self_reward.ts";
import { gradeWithRubric, judgeCompletion } from "./rubric.ts";
import { registerDataset } from "../train/data.ts";
import { TINY_DATASET_NAME, tinyDatasetFactory } from "./mixture.ts";
import { tinyEvaluation } from "./policy_vs_base.ts";
import {
  packedTinyDatasetFactory,
  TINY_PACKED_DATASET_NAME,
  tinyPretrainKind,
} from "./pretrain.ts";
import type { MalformedQueryPolicy } from "./reward.ts";
import { tinyQuerySource } from "./task_queries.ts";
import { VerifierTaskReward } from "./verifier_task_reward.ts";

registerDataset(TINY_DATASET_NAME, tinyDatasetFactory);
registerDataset(TINY_PACKED_DATASET_NAME, packedTinyDatasetFactory);
QUERY_SOURCES.register("tiny", tinyQuerySource);
TASK_REWARDS.register("verifier", (section) =>
  new VerifierTaskReward({
    malformedQuery: section.malformedQuery as MalformedQueryPolicy,
    partialCredit: section.partialCredit as number,
  }));
EVALUATIONS.register("tiny", tinyEvaluation);
// The exact rubric as R_Q: the oracle-judge ablation (what a perfect tiny judge would give).
QUALITY_ORACLES.register("tiny-rubric", ({ query, answer }) => {
  const grade = gradeWithRubric(query, answer);
  return { score: grade.score, text: judgeCompletion(grade) };
});

/** The experiment kinds the tiny world defines. */
export const TINY_WORLD_KINDS: readonly ExperimentKind[] = [tinyPretrainKind];
