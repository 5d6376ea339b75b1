/**
 * The actors of an RL run, loaded from its manifest: the policy (from its source, or from the
 * checkpoint a resumed run continues), the frozen reference (a second copy of the source: KL
 * reference and self-reward judge), the tokenizer, the task reward R, the self-reward judge
 * (LSP only) and the filled challenger prompt (LSP and LSP-Zero).
 *
 * @module
 */
import type { Gpu } from "../../gpu/device.ts";
import type { RunContext } from "../experiment/kind.ts";
import { LlamaModel } from "../model/llama.ts";
import { weightPrecisionOf } from "../model/precision.ts";
import { type ChatTokenizer, loadTokenizer } from "../model/tokenizer.ts";
import { RewardModel } from "../rewards/reward_model.ts";
import { TASK_REWARDS, type TaskReward } from "../rewards/reward.ts";
import { fillChallengerPrompt, readPromptSource } from "./conversations.ts";
import { type LoadedModel, loadModelSource } from "../data/model_source.ts";
import type { RlParams, RlRun } from "./schema.ts";
import { oracleJudge, QUALITY_ORACLES, type QualityJudge, SelfRewardJudge } from "./self_reward.ts";

/** Everything an RL run plays with. */
export interface RlActors {
  policy: LoadedModel;
  /** The frozen initial model. */
  reference: LoadedModel;
  tokenizer: ChatTokenizer;
  taskReward: TaskReward;
  /** The quality self-reward judge (LSP), or null (LSP-Zero, GRPO). */
  judge: QualityJudge | null;
  /** The challenger prompt with its slots filled (LSP, LSP-Zero), or null (GRPO). */
  challengerPrompt: string | null;
  /** The prompt templates as read (unfilled), for the evaluation. */
  templates: { challenger?: string; judge?: string };
}

/** The task reward R of the manifest's `reward` section. */
async function loadTaskReward(gpu: Gpu, r: RlParams["reward"]): Promise<TaskReward> {
  if (r.kind !== "model") return TASK_REWARDS.get(r.kind)(r);
  const m = await loadModelSource(gpu, r.model, "reward.model", r.storage);
  const tok = await loadTokenizer(m.tokenizerDir);
  return new RewardModel(
    m.model,
    tok,
    { batchSize: r.batchSize, maxTokens: r.maxTokens },
    m.description,
  );
}

/**
 * Loads the actors of `run`. `resumeFrom` (a checkpoint folder) replaces the policy's weights;
 * the reference always comes from the source model.
 */
export async function loadActors(
  ctx: RunContext,
  gpu: Gpu,
  run: RlRun,
  resumeFrom: string | null,
): Promise<RlActors> {
  const p = run.params;
  ctx.log("loading the policy and the frozen reference");
  let policy: LoadedModel;
  let reference: LoadedModel;
  if (resumeFrom) {
    // The reference stays the source model; the policy is the checkpoint's (F32) weights.
    reference = await loadModelSource(gpu, p.model, "model", p.reference.storage);
    policy = { ...reference, model: await LlamaModel.load(gpu, resumeFrom) };
  } else {
    policy = await loadModelSource(gpu, p.model, "model");
    reference = await loadModelSource(gpu, p.model, "model", p.reference.storage);
  }
  policy.model.usePrecision(weightPrecisionOf(p.precision));
  if (policy.bundle) await ctx.recordParent(policy.bundle.dir);
  const tokenizer = await loadTokenizer(policy.tokenizerDir);
  if (tokenizer.vocabSize > policy.model.config.vocabSize) {
    throw new Error(
      `${policy.tokenizerDir}: the tokenizer has ${tokenizer.vocabSize} ids but the model's ` +
        `vocab is ${policy.model.config.vocabSize}`,
    );
  }
  const taskReward = await loadTaskReward(gpu, p.reward);

  const actors: RlActors = {
    policy,
    reference,
    tokenizer,
    taskReward,
    judge: null,
    challengerPrompt: null,
    templates: {},
  };
  if (run.algorithm === "lsp") {
    const q = run.params;
    actors.templates.challenger = await readPromptSource(q.challenger.prompt, "challenger.prompt");
    actors.challengerPrompt = fillChallengerPrompt(actors.templates.challenger, {
      task: q.challenger.task,
      template: q.challenger.template,
    }, "challenger.prompt");
    if (q.selfReward.enabled && q.selfReward.judge !== "reference") {
      const oracle = QUALITY_ORACLES.get(q.selfReward.judge);
      ctx.log(`note: the self-reward is the exact "${q.selfReward.judge}" oracle (an ablation)`);
      actors.judge = oracleJudge(oracle, q.selfReward.max);
    } else if (q.selfReward.enabled) {
      actors.templates.judge = await readPromptSource(q.selfReward.prompt, "selfReward.prompt");
      actors.judge = new SelfRewardJudge(reference.model, tokenizer, {
        prompt: actors.templates.judge,
        maxNewTokens: q.selfReward.maxNewTokens,
        temperature: q.selfReward.temperature,
        max: q.selfReward.max,
        fallback: q.selfReward.fallback,
        batchSize: q.selfReward.batchSize,
      });
    }
  }
  return actors;
}
