/**
 * The experiment kinds `lsp` (Language Self-Play; LSP-Zero is `selfReward.enabled: false`) and
 * `grpo` (the data baseline: the same iteration with queries read from a dataset and only the
 * solver loss). Every choice LSP.md leaves open is a knob here, so the resolved manifest in the
 * bundle records it.
 *
 * Per iteration: metrics.jsonl (deterministic), timings.jsonl (time split and tokens/s),
 * samples.jsonl every `samplesEvery` iterations (and the first and last), a checkpoint every
 * `checkpointEvery` iterations and at the end, and at the end eval.json (the tiny world's
 * held-out evaluation, or AlpacaEval with the reward model as judge).
 *
 * Resumable: `--resume` loads the policy, AdamW state and data position from the latest
 * complete checkpoint and continues at the next iteration. Nothing else crosses iterations
 * (samplers are keyed by seed and iteration, the lr and the samples cadence by the iteration),
 * so the resumed run writes the uninterrupted run's bytes.
 *
 * @module
 */
import { z } from "zod";
import { getGpu, type Gpu } from "../../gpu/device.ts";
import { defineKind, type RunContext } from "../runner/kind.ts";
import { loadTokenizer } from "../model/tokenizer.ts";
import { WEIGHT_STORAGE_CHOICES } from "../model/weights.ts";
import { RewardModel } from "../rewards/reward_model.ts";
import type { TaskReward } from "../rewards/reward.ts";
import { VerifierTaskReward } from "../rewards/verifier_reward.ts";
import { alpacaEval } from "../eval/alpaca_eval.ts";
import { loadEvalSet } from "../eval/eval_set.ts";
import { tinyEval } from "../eval/tiny_eval.ts";
import { AdamW, trainableParams } from "../train/optimizer.ts";
import { lrAt, type LrSchedule } from "../train/schedule.ts";
import { latestCheckpoint, loadTrainCheckpoint, saveCheckpoint } from "../train/checkpoint.ts";
import { OptimizerSchema } from "../train/optimizer_schema.ts";
import { LlamaModel } from "../model/llama.ts";
import { join } from "node:path";
import { DataOrder } from "../train/data.ts";
import { lspIteration, type LspIterationConfig } from "./lsp.ts";
import { fillChallengerPrompt, readPromptSource } from "./roles.ts";
import { SelfRewardJudge } from "./self_reward.ts";
import {
  FileSourceSchema,
  type LoadedModel,
  loadModelSource,
  modelSourceInputs,
  ModelSourceSchema,
  resolveFileSource,
} from "./sources.ts";
import { instructionQueries, tinyTaskQueries } from "./grpo_data.ts";
import { formatMemoryPlan, rlMemoryPlan } from "./memory_plan.ts";

const PromptSourceSchema = z.union([
  z.strictObject({ text: z.string().min(1) }),
  z.strictObject({ file: z.string().min(1) }),
]);

const SamplingSchema = z.strictObject({
  maxNewTokens: z.number().int().min(1),
  temperature: z.number().min(0).default(1),
  topP: z.number().gt(0).max(1).default(1),
});

const RewardSchema = z.strictObject({
  /** `verifier`: the tiny world's exact verifier; `model`: a sequence-classification RM. */
  kind: z.enum(["verifier", "model"]),
  malformedQuery: z.enum(["max", "zero"]).default("max"),
  partialCredit: z.number().min(0).max(1).default(0),
  model: ModelSourceSchema.prefault({}),
  batchSize: z.number().int().min(1).default(4),
  maxTokens: z.number().int().min(2).default(2048),
  /** Weight storage of the frozen reward model ("auto": BF16 checkpoints stay 16-bit, exact). */
  storage: z.enum(WEIGHT_STORAGE_CHOICES).default("auto"),
});

const EvalSchema = z.strictObject({
  /** `tiny`: held-out accuracy and verifier win rate; `alpaca`: RM-judged win rate; `none`. */
  kind: z.enum(["tiny", "alpaca", "none"]),
  temperature: z.number().min(0).default(0),
  maxNewTokens: z.number().int().min(1).default(48),
  batchSize: z.number().int().min(1).default(16),
  /** tiny: tasks per (family, level), judge cases, challenger samples. */
  perCell: z.number().int().min(1).default(10),
  judgeCases: z.number().int().min(0).default(0),
  challengerSamples: z.number().int().min(0).default(0),
  /** alpaca: the eval set (AlpacaEval JSON) and how much of it. */
  evalSet: FileSourceSchema.prefault({}),
  limit: z.number().int().min(1).optional(),
});

const common = {
  /** The policy's starting point; the frozen reference is a second copy of it. */
  model: ModelSourceSchema,
  /** The frozen reference's weight storage ("auto": 16-bit when the checkpoint is BF16, exact). */
  reference: z.strictObject({
    storage: z.enum(WEIGHT_STORAGE_CHOICES).default("auto"),
  }).prefault({}),
  iterations: z.number().int().min(1),
  /** N: queries per iteration (= batchSize * gradAccum, as the paper's table). */
  queries: z.number().int().min(1).default(8),
  /** G: solver answers per query (not given by the paper). */
  answersPerQuery: z.number().int().min(2).default(4),
  /** Queries per micro-batch and micro-batches per step (paper: 4 and 2). */
  batchSize: z.number().int().min(1).default(4),
  gradAccum: z.number().int().min(1).default(2),
  /** Sequences per forward/backward pass: memory only (gradients are summed exactly). */
  rowsPerPass: z.number().int().min(1).default(4),
  /** Sequences per generate() call. */
  generationBatch: z.number().int().min(1).default(32),
  recompute: z.boolean().default(false),
  solver: SamplingSchema,
  loss: z.strictObject({
    beta: z.number().min(0).default(0.05),
    alphaCh: z.number().min(0).default(1),
    aggregation: z.enum(["sequence-sum", "token-mean"]).default("sequence-sum"),
    klEstimator: z.enum(["k1", "k3"]).default("k1"),
    advantageNorm: z.enum(["none", "std"]).default("none"),
  }).prefault({}),
  reward: RewardSchema,
  optimizer: OptimizerSchema,
  samplesEvery: z.number().int().min(1).default(10),
  /** Checkpoint every K iterations (0: only at the end). */
  checkpointEvery: z.number().int().min(0).default(0),
  eval: EvalSchema,
};

/** Parameters of the `lsp` kind. */
export const LspSchema = z.strictObject({
  ...common,
  challenger: z.strictObject({
    prompt: PromptSourceSchema,
    task: z.string().default(""),
    template: z.string().default(""),
    maxNewTokens: z.number().int().min(1),
    temperature: z.number().min(0).default(1),
    topP: z.number().gt(0).max(1).default(1),
  }),
  selfReward: z.strictObject({
    /** On: LSP; off: LSP-Zero. */
    enabled: z.boolean(),
    prompt: PromptSourceSchema.default({ file: "experiments/assets/lsp/judge_prompt.txt" }),
    maxNewTokens: z.number().int().min(1).default(256),
    temperature: z.number().min(0).default(0),
    max: z.number().int().min(1).default(7),
    /** Score of an unreadable or out-of-range judgement (counted in the metrics). */
    fallback: z.number().default(0),
    /** R + weight * R_Q (the paper: no rescaling, 1). */
    weight: z.number().min(0).default(1),
    batchSize: z.number().int().min(1).default(32),
  }),
});

/** Parameters of the `grpo` kind. */
export const GrpoSchema = z.strictObject({
  ...common,
  data: z.strictObject({
    /** `tiny`: a fixed generated set of training-split tasks; `file`: Alpaca JSON/JSONL. */
    source: z.enum(["tiny", "file"]),
    file: FileSourceSchema.prefault({}),
    size: z.number().int().min(1).default(512),
    minLevel: z.number().int().min(1).default(1),
    maxLevel: z.number().int().min(1).default(5),
    shuffle: z.boolean().default(true),
  }),
});

/** Parsed `lsp` parameters. */
export type LspParams = z.output<typeof LspSchema>;
/** Parsed `grpo` parameters. */
export type GrpoParams = z.output<typeof GrpoSchema>;
type Params = LspParams | GrpoParams;

function schedule(p: Params): LrSchedule {
  const o = p.optimizer;
  return o.schedule === "constant" ? { kind: "constant", lr: o.lr, warmupSteps: o.warmupSteps } : {
    kind: "cosine",
    lr: o.lr,
    warmupSteps: o.warmupSteps,
    totalSteps: p.iterations,
    minLr: o.minLr,
  };
}

async function taskRewardOf(gpu: Gpu, p: Params): Promise<TaskReward> {
  const r = p.reward;
  if (r.kind === "verifier") {
    return new VerifierTaskReward({
      malformedQuery: r.malformedQuery,
      partialCredit: r.partialCredit,
    });
  }
  const m = await loadModelSource(gpu, r.model, "reward.model", r.storage);
  const tok = await loadTokenizer(m.tokenizerDir);
  return new RewardModel(
    m.model,
    tok,
    { batchSize: r.batchSize, maxTokens: r.maxTokens },
    m.description,
  );
}

function inputsOf(p: Params): string[] {
  const out = modelSourceInputs(p.model, "model");
  if (p.reward.kind === "model") out.push(...modelSourceInputs(p.reward.model, "reward.model"));
  if (p.eval.kind === "alpaca") out.push(resolveFileSource(p.eval.evalSet, "eval.evalSet"));
  if ("data" in p && p.data.source === "file") {
    out.push(resolveFileSource(p.data.file, "data.file"));
  }
  if ("challenger" in p && "file" in p.challenger.prompt) out.push(p.challenger.prompt.file);
  if ("selfReward" in p && p.selfReward.enabled && "file" in p.selfReward.prompt) {
    out.push(p.selfReward.prompt.file);
  }
  return out;
}

/** Runs an `lsp` or `grpo` experiment. */
async function runRl(ctx: RunContext, p: Params): Promise<void> {
  if (p.queries !== p.batchSize * p.gradAccum) {
    throw new Error(
      `manifest: queries (${p.queries}) must equal batchSize (${p.batchSize}) x gradAccum ` +
        `(${p.gradAccum}): one optimizer step per iteration over all its queries`,
    );
  }
  const selfPlay = "challenger" in p;
  const gpu = await getGpu();
  ctx.recordGpu(gpu.info);

  const resumeFrom = ctx.resume ? await latestCheckpoint(join(ctx.bundleDir, "checkpoints")) : null;
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
  if (policy.bundle) await ctx.recordParent(policy.bundle.dir);
  const tok = await loadTokenizer(policy.tokenizerDir);
  if (tok.vocabSize > policy.model.config.vocabSize) {
    throw new Error(
      `${policy.tokenizerDir}: the tokenizer has ${tok.vocabSize} ids but the model's vocab is ` +
        `${policy.model.config.vocabSize}`,
    );
  }
  const taskReward = await taskRewardOf(gpu, p);

  let challengerPrompt: string | null = null;
  let challengerTemplate: string | undefined;
  let judge: SelfRewardJudge | null = null;
  let judgeTemplate: string | undefined;
  if (selfPlay) {
    challengerTemplate = await readPromptSource(p.challenger.prompt, "challenger.prompt");
    challengerPrompt = fillChallengerPrompt(challengerTemplate, {
      task: p.challenger.task,
      template: p.challenger.template,
    }, "challenger.prompt");
    if (p.selfReward.enabled) {
      judgeTemplate = await readPromptSource(p.selfReward.prompt, "selfReward.prompt");
      judge = new SelfRewardJudge(reference.model, tok, {
        prompt: judgeTemplate,
        maxNewTokens: p.selfReward.maxNewTokens,
        temperature: p.selfReward.temperature,
        max: p.selfReward.max,
        fallback: p.selfReward.fallback,
        batchSize: p.selfReward.batchSize,
      });
    }
  }

  let dataset: string[] | null = null;
  let order: DataOrder | null = null;
  if (!selfPlay) {
    const d = p.data;
    dataset = d.source === "tiny"
      ? tinyTaskQueries(d.size, ctx.seed, d.minLevel, d.maxLevel)
      : await instructionQueries(resolveFileSource(d.file, "data.file"));
    order = new DataOrder(dataset.length, ctx.seed, d.shuffle);
  }

  const o = p.optimizer;
  const optimizer = new AdamW(gpu, trainableParams(policy.model), {
    beta1: o.beta1,
    beta2: o.beta2,
    eps: o.eps,
    weightDecay: o.weightDecay,
    maxGradNorm: o.maxGradNorm,
  });
  const sched = schedule(p);
  let position = 0;
  let firstIter = 1;
  if (resumeFrom) {
    const ck = await loadTrainCheckpoint(resumeFrom);
    const iteration = ck.state.extra?.iteration;
    // One optimizer step per iteration: the runner cut the JSONL files back to `step`.
    if (iteration !== ck.state.step) {
      throw new Error(
        `${join(resumeFrom, "state.json")}: extra.iteration (${iteration}) must equal step ` +
          `(${ck.state.step})`,
      );
    }
    optimizer.loadState(ck.optimizer, ck.state.step, resumeFrom);
    position = ck.state.dataPosition;
    firstIter = ck.state.step + 1;
    ctx.log(`resuming from ${resumeFrom} (iteration ${ck.state.step})`);
  }
  ctx.recordProvenance("rl", {
    kind: selfPlay ? (judge ? "lsp" : "lsp-zero") : "grpo",
    policy: policy.description,
    base: policy.bundle,
    reward: taskReward.name,
    parameters: optimizer.numel,
    datasetSize: dataset?.length ?? null,
    resumedFrom: resumeFrom ? `checkpoints/${resumeFrom.split("/").pop()}` : null,
  });

  const cfg: LspIterationConfig = {
    queries: p.queries,
    answersPerQuery: p.answersPerQuery,
    challengerPrompt,
    challenger: selfPlay
      ? {
        maxNewTokens: p.challenger.maxNewTokens,
        temperature: p.challenger.temperature,
        topP: p.challenger.topP,
      }
      : { maxNewTokens: 1, temperature: 1, topP: 1 },
    solver: p.solver,
    advantageNorm: p.loss.advantageNorm,
    selfRewardWeight: selfPlay ? p.selfReward.weight : 1,
    beta: p.loss.beta,
    alphaCh: p.loss.alphaCh,
    aggregation: p.loss.aggregation,
    klEstimator: p.loss.klEstimator,
    rowsPerPass: p.rowsPerPass,
    generationBatch: p.generationBatch,
    recompute: p.recompute,
  };

  const checkpoint = async (iter: number) => {
    const rel = await saveCheckpoint(
      { writeFileWith: (r, w) => ctx.writeFileWith(r, { deterministic: true }, w) },
      "checkpoints",
      {
        gpu,
        config: policy.model.config,
        weights: policy.model.weights,
        optimizer,
        state: {
          step: optimizer.step,
          dataPosition: position,
          rng: { kind: "generation-streams", seed: ctx.seed },
          lrSchedule: sched,
          extra: { iteration: iter },
        },
        tokenizerDir: policy.tokenizerDir,
      },
    );
    ctx.log(`checkpoint ${rel}`);
  };

  for (let iter = firstIter; iter <= p.iterations; iter++) {
    ctx.throwIfAborted();
    let given: string[] | null = null;
    if (dataset && order) {
      given = [];
      for (let k = 0; k < p.queries; k++) given.push(dataset[order.indexAt(position++)]);
    }
    const lr = lrAt(sched, iter);
    const r = await lspIteration(
      {
        policy: policy.model,
        reference: reference.model,
        tokenizer: tok,
        optimizer,
        taskReward,
        judge,
      },
      cfg,
      iter,
      ctx.seed,
      lr,
      given,
    );
    await ctx.appendJsonl("metrics.jsonl", r.metrics, { deterministic: true });
    const s = r.seconds;
    const genSeconds = s.challengerGeneration + s.solverGeneration;
    await ctx.appendJsonl("timings.jsonl", {
      iter,
      seconds: s,
      generationTokensPerSecond: genSeconds > 0 ? r.generatedTokens / genSeconds : null,
      trainingTokensPerSecond: s.training > 0 ? r.trainedTokens / s.training : null,
    }, { deterministic: false });
    if (iter === 1 || iter === p.iterations || iter % p.samplesEvery === 0) {
      await ctx.appendJsonl("samples.jsonl", { iter, queries: r.samples }, { deterministic: true });
    }
    const m = r.metrics as {
      solverReward: { mean: number };
      loss: { total: number };
      logprobCheck: { mismatches: number; compared: number; maxAbsDiff: number };
    };
    if (m.logprobCheck.mismatches > 0) {
      ctx.log(
        `warning: iteration ${iter}: the training forward differs from generation at ` +
          `${m.logprobCheck.mismatches} of ${m.logprobCheck.compared} tokens (max |diff| ` +
          `${m.logprobCheck.maxAbsDiff}); the update used the generation log-probs`,
      );
    }
    ctx.log(
      `iter ${iter}/${p.iterations}: reward ${m.solverReward.mean.toFixed(3)}, loss ` +
        `${m.loss.total.toFixed(4)}, ${
          (s.challengerGeneration + s.solverGeneration + s.rewards + s.selfReward + s.training)
            .toFixed(1)
        }s`,
    );
    ctx.progress(selfPlay ? "lsp" : "grpo", iter, p.iterations);
    if (!Number.isFinite(m.loss.total)) {
      throw new Error(`iteration ${iter}: loss is ${m.loss.total}`);
    }
    if (iter === p.iterations || (p.checkpointEvery > 0 && iter % p.checkpointEvery === 0)) {
      await checkpoint(iter);
    }
  }

  const e = p.eval;
  if (e.kind === "none") return;
  ctx.log(`evaluation (${e.kind})`);
  if (e.kind === "tiny") {
    const result = await tinyEval({
      policy: policy.model,
      base: reference.model,
      tokenizer: tok,
      heldOut: {
        perCell: e.perCell,
        judgeCases: e.judgeCases,
        challengerSamples: e.challengerSamples,
        judgePrompt: judgeTemplate,
        challengerPrompt: challengerTemplate,
      },
      temperature: e.temperature,
      maxNewTokens: e.maxNewTokens,
      seed: ctx.seed,
      batchSize: e.batchSize,
    });
    await ctx.writeFile("eval.json", JSON.stringify(result, null, 2) + "\n", {
      deterministic: true,
    });
    ctx.log(
      `eval: held-out accuracy ${result.policy.solver.overall.accuracy.toFixed(3)} (base ` +
        `${result.base.solver.overall.accuracy.toFixed(3)}), win rate ` +
        `${result.winRate.overall.mean.toFixed(3)}`,
    );
    return;
  }
  if (!(taskReward instanceof RewardModel)) {
    throw new Error("eval.kind alpaca needs reward.kind model (the reward model is the judge)");
  }
  const rm = taskReward;
  const evalSet = await loadEvalSet(resolveFileSource(e.evalSet, "eval.evalSet"), {
    limit: e.limit,
  });
  const result = await alpacaEval({
    policy: policy.model,
    base: reference.model,
    rewardModel: rm,
    tokenizer: tok,
    evalSet,
    temperature: e.temperature,
    maxNewTokens: e.maxNewTokens,
    seed: ctx.seed,
    batchSize: e.batchSize,
    policyName: ctx.experiment,
    baseName: "base",
  });
  const { modelOutputs, ...summary } = result;
  await ctx.writeFile("eval.json", JSON.stringify(summary, null, 2) + "\n", {
    deterministic: true,
  });
  await ctx.writeFile("model_outputs.json", modelOutputs.policy, { deterministic: true });
  await ctx.writeFile("base_outputs.json", modelOutputs.base, { deterministic: true });
  ctx.log(`eval: win rate ${result.winRate.overall.mean.toFixed(3)} against the base`);
}

/** The `lsp` kind: Language Self-Play (selfReward on) or LSP-Zero (off). */
export const lspKind = defineKind({
  kind: "lsp",
  description: "Language Self-Play: challenger and solver from one model, optional self-reward",
  schema: LspSchema,
  inputs: inputsOf,
  resumable: true,
  planMemory: async (p) => formatMemoryPlan(await rlMemoryPlan(p)),
  run: runRl,
});

/** The `grpo` kind: GRPO on dataset queries (the data baseline), solver loss only. */
export const grpoKind = defineKind({
  kind: "grpo",
  description: "GRPO data baseline: LSP's solver update on queries read from a dataset",
  schema: GrpoSchema,
  inputs: inputsOf,
  resumable: true,
  planMemory: async (p) => formatMemoryPlan(await rlMemoryPlan(p)),
  run: runRl,
});
