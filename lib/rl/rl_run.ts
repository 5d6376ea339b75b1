/**
 * An RL run (`lsp` or `grpo`) from its manifest to its bundle, in four parts with one job each:
 * load the actors, resume (optimizer, data position and first iteration from the latest
 * checkpoint), iterate (one {@link lspIteration} and its bundle lines per iteration, checkpoints),
 * and evaluate the policy against its base.
 *
 * Per iteration: metrics.jsonl (deterministic), timings.jsonl (time split and tokens/s),
 * samples.jsonl every `samplesEvery` iterations (and the first and last), a checkpoint every
 * `checkpointEvery` iterations and at the end; at the end the evaluation's files (eval.json ...).
 *
 * Resumable: nothing but the checkpoint crosses iterations (samplers are keyed by seed and
 * iteration, the lr and the samples cadence by the iteration), so a resumed run writes the
 * uninterrupted run's bytes.
 *
 * @module
 */
import { join } from "node:path";
import { getGpu, type Gpu } from "../../gpu/device.ts";
import type { RunContext } from "../experiment/kind.ts";
import { alpacaEvaluation } from "../eval/alpaca_eval.ts";
import { type Evaluation, EVALUATIONS } from "../eval/evaluation.ts";
import { DataOrder } from "../train/data.ts";
import type { AdamW } from "../train/optimizer.ts";
import { adamwOf, scheduleOf } from "../train/optimizer_schema.ts";
import { checkpointSaver, restoreTraining, resumeCheckpoint } from "../train/run_checkpoints.ts";
import { lrAt, type LrSchedule } from "../train/schedule.ts";
import { loadActors, type RlActors } from "./actors.ts";
import { type IterationResult, lspIteration, type LspIterationConfig } from "./iteration.ts";
import { loadQueries } from "./query_source.ts";
import type { RlRun } from "./schema.ts";
import { klIsInert } from "./kl.ts";

/** The queries of a GRPO run: a fixed list read in a seeded order, one position per query. */
interface GivenQueries {
  list: string[];
  order: DataOrder;
}

/** Where the loop starts: the first iteration and the data position. */
interface StartPoint {
  firstIteration: number;
  position: number;
}

/** The iteration's settings from the manifest. */
function iterationConfig(run: RlRun, challengerPrompt: string | null): LspIterationConfig {
  const p = run.params;
  const lsp = run.algorithm === "lsp" ? run.params : null;
  return {
    queries: p.queries,
    answersPerQuery: p.answersPerQuery,
    challengerPrompt,
    challenger: lsp
      ? {
        maxNewTokens: lsp.challenger.maxNewTokens,
        temperature: lsp.challenger.temperature,
        topP: lsp.challenger.topP,
      }
      : { maxNewTokens: 1, temperature: 1, topP: 1 },
    solver: p.solver,
    advantageNorm: p.loss.advantageNorm,
    selfRewardScale: lsp ? lsp.selfReward.scale : 1,
    beta: p.loss.beta,
    alphaCh: p.loss.alphaCh,
    aggregation: p.loss.aggregation,
    kl: p.loss.kl,
    rowsPerPass: p.rowsPerPass,
    generationBatch: p.generationBatch,
    recompute: p.recompute,
  };
}

/** Restores AdamW and the data position from checkpoint `dir` (one update per iteration). */
async function resume(ctx: RunContext, dir: string, optimizer: AdamW): Promise<StartPoint> {
  const state = await restoreTraining(dir, optimizer);
  const iteration = state.extra?.iteration;
  // One optimizer step per iteration: the runner cut the JSONL files back to `step`.
  if (iteration !== state.step) {
    throw new Error(
      `${join(dir, "state.json")}: extra.iteration (${iteration}) must equal step ` +
        `(${state.step})`,
    );
  }
  ctx.log(`resuming from ${dir} (iteration ${state.step})`);
  return { firstIteration: state.step + 1, position: state.dataPosition };
}

/** Writes one iteration's bundle lines and its log line. */
async function record(ctx: RunContext, run: RlRun, r: IterationResult): Promise<void> {
  const p = run.params, iter = r.metrics.iter, s = r.seconds;
  await ctx.appendJsonl("metrics.jsonl", r.metrics, { deterministic: true });
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
  const check = r.metrics.logprobCheck;
  if (check.mismatches > 0) {
    ctx.log(
      `warning: iteration ${iter}: the training forward differs from generation at ` +
        `${check.mismatches} of ${check.compared} tokens (max |diff| ${check.maxAbsDiff}); the ` +
        `update used the generation log-probs`,
    );
  }
  const total = genSeconds + s.rewards + s.selfReward + s.training;
  ctx.log(
    `iter ${iter}/${p.iterations}: reward ${r.metrics.solverReward.mean.toFixed(3)}, loss ` +
      `${r.metrics.loss.total.toFixed(4)}, ${total.toFixed(1)}s`,
  );
}

/** The loop: one iteration per optimizer step from `start` to the last, with checkpoints. */
async function iterate(
  ctx: RunContext,
  run: RlRun,
  gpu: Gpu,
  actors: RlActors,
  optimizer: AdamW,
  schedule: LrSchedule,
  given: GivenQueries | null,
  start: StartPoint,
): Promise<void> {
  const p = run.params;
  const cfg = iterationConfig(run, actors.challengerPrompt);
  let position = start.position;
  const save = checkpointSaver(ctx, {
    gpu,
    model: actors.policy.model,
    optimizer,
    tokenizerDir: actors.policy.tokenizerDir,
  });
  for (let iter = start.firstIteration; iter <= p.iterations; iter++) {
    ctx.throwIfAborted();
    let queries: string[] | null = null;
    if (given) {
      queries = [];
      for (let k = 0; k < p.queries; k++) queries.push(given.list[given.order.indexAt(position++)]);
    }
    const lr = lrAt(schedule, iter);
    const r = await lspIteration(
      {
        policy: actors.policy.model,
        reference: actors.reference.model,
        tokenizer: actors.tokenizer,
        optimizer,
        taskReward: actors.taskReward,
        judge: actors.judge,
      },
      cfg,
      iter,
      ctx.seed,
      lr,
      queries,
    );
    await record(ctx, run, r);
    ctx.progress(run.algorithm, iter, p.iterations);
    if (!Number.isFinite(r.metrics.loss.total)) {
      throw new Error(`iteration ${iter}: loss is ${r.metrics.loss.total}`);
    }
    const last = iter === p.iterations && p.finalCheckpoint;
    if (last || (p.checkpointEvery > 0 && iter % p.checkpointEvery === 0)) {
      await save({
        step: optimizer.step,
        dataPosition: position,
        rng: { kind: "generation-streams", seed: ctx.seed },
        lrSchedule: schedule,
        extra: { iteration: iter },
      });
    }
  }
}

/** The evaluation the manifest's `eval.kind` names (null for "none"). */
function evaluationOf(kind: string): Evaluation | null {
  if (kind === "none") return null;
  return kind === "alpaca" ? alpacaEvaluation : EVALUATIONS.get(kind);
}

/** The policy against its base, written into the bundle. */
async function evaluate(ctx: RunContext, run: RlRun, actors: RlActors): Promise<void> {
  const e = run.params.eval;
  const evaluation = evaluationOf(e.kind);
  if (!evaluation) return;
  ctx.log(`evaluation (${e.kind})`);
  const result = await evaluation({
    policy: actors.policy.model,
    base: actors.reference.model,
    tokenizer: actors.tokenizer,
    params: e,
    seed: ctx.seed,
    experiment: ctx.experiment,
    taskReward: actors.taskReward,
    prompts: actors.templates,
  });
  for (const f of result.files) {
    await ctx.writeFile(f.path, f.content, { deterministic: true });
  }
  ctx.log(result.summary);
}

/** Runs an `lsp` or `grpo` experiment; see the module doc. */
export async function runRl(ctx: RunContext, run: RlRun): Promise<void> {
  const p = run.params;
  if (p.queries !== p.batchSize * p.gradAccum) {
    throw new Error(
      `manifest: queries (${p.queries}) must equal batchSize (${p.batchSize}) x gradAccum ` +
        `(${p.gradAccum}): one optimizer step per iteration over all its queries`,
    );
  }
  if (klIsInert(p.loss.kl) && p.loss.beta > 0) {
    ctx.log(
      "note: loss.kl is k1 in the loss, whose expected gradient is zero: the KL term does not " +
        'pull towards the reference (an ablation; "in": "reward", or k2/k3 in the loss, regularise)',
    );
  }
  const gpu = await getGpu();
  ctx.recordGpu(gpu.info);
  const resumeFrom = await resumeCheckpoint(ctx);
  const actors = await loadActors(ctx, gpu, run, resumeFrom);

  let given: GivenQueries | null = null;
  if (run.algorithm === "grpo") {
    const list = await loadQueries(run.params.data, ctx.seed);
    given = { list, order: new DataOrder(list.length, ctx.seed, run.params.data.shuffle) };
  }
  const optimizer = adamwOf(gpu, actors.policy.model, p.optimizer);
  const schedule = scheduleOf(p.optimizer, p.iterations);
  const start = resumeFrom
    ? await resume(ctx, resumeFrom, optimizer)
    : { firstIteration: 1, position: 0 };
  ctx.recordProvenance("rl", {
    kind: run.algorithm === "grpo" ? "grpo" : actors.judge ? "lsp" : "lsp-zero",
    policy: actors.policy.description,
    base: actors.policy.bundle,
    reward: actors.taskReward.name,
    parameters: optimizer.numel,
    datasetSize: given?.list.length ?? null,
    resumedFrom: resumeFrom ? `checkpoints/${resumeFrom.split("/").pop()}` : null,
  });

  await iterate(ctx, run, gpu, actors, optimizer, schedule, given, start);
  await evaluate(ctx, run, actors);
}
