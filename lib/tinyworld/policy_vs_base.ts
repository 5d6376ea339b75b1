/**
 * The tiny world's evaluation of a policy against its base: the held-out evaluation
 * (tinyworld/evaluate.ts: solver accuracy by task family and difficulty level, judge agreement,
 * challenger validity) for both models, and the policy's win rate against the base on the
 * held-out solver tasks with the verifier as judge (win = right where the base is wrong, ties
 * count half), overall, per family and per level.
 *
 * Generation is greedy by default (temperature 0), so the evaluation is exact and repeatable.
 *
 * @module
 */
import type { LlamaModel } from "../model/llama.ts";
import type { ChatMessage, ChatTokenizer } from "../model/tokenizer.ts";
import {
  evaluateTinyWorld,
  type GenerateTexts,
  type TinyEvalOptions,
  type TinyEvalReport,
} from "./heldout_eval.ts";
import { evalSetOf, type EvalSplit, heldOutTasks, solverMessages } from "./heldout.ts";
import { scoreChecked, type TaskReward } from "../rewards/reward.ts";
import { VerifierTaskReward } from "./verifier_task_reward.ts";
import { generateReplies } from "../model/chat_replies.ts";
import { type RateWithError, type WinRates, winRates } from "../eval/winrate.ts";
import type { Evaluation } from "../eval/evaluation.ts";

/** Inputs of {@link tinyEval}. */
export interface TinyEvalInputs {
  policy: LlamaModel;
  base: LlamaModel;
  /** The tiny world's tokenizer and chat template (shared by policy and base). */
  tokenizer: ChatTokenizer;
  /** Which held-out set and how much of it (seed, tasks per cell, judge and challenger counts). */
  heldOut?: TinyEvalOptions;
  /** Default 0 (greedy). */
  temperature?: number;
  /** Default 48 (above the longest held-out answer). */
  maxNewTokens?: number;
  /** Sampling seed (matters only when temperature > 0; default 0). */
  seed?: number;
  /** Conversations per generate() call (default 16). */
  batchSize?: number;
  /** Judge of the pairwise comparison (default the exact verifier). */
  judge?: TaskReward;
  /** Solver examples kept for the report (default 8). */
  samples?: number;
}

/** The result of {@link tinyEval}: plain JSON (the caller writes it as eval.json). */
export interface TinyEvalResult {
  /** Which set was evaluated: "heldout" (reported results) or "validation" (tuning). */
  split: EvalSplit;
  sampling: { temperature: number; maxNewTokens: number; seed: number };
  /** The held-out evaluation of each model (solver accuracy by family, level and cell, ...). */
  policy: TinyEvalReport;
  base: TinyEvalReport;
  judge: string;
  /** Policy vs base on the held-out solver tasks; subsets are task families. */
  winRate: WinRates;
  /** The same verdicts grouped by difficulty level. */
  winRateByLevel: Record<string, RateWithError>;
  /** A few held-out tasks with both models' answers. */
  samples: { task: string; level: number; answer: string; policy: string; base: string }[];
}

/** A text generator over one model that reuses its result when asked the same thing again. */
function memoGenerator(
  model: LlamaModel,
  tokenizer: ChatTokenizer,
  opts: { temperature: number; maxNewTokens: number; seed: number; batchSize: number },
): GenerateTexts {
  const memo = new Map<string, string[]>();
  return async (conversations: ChatMessage[][]) => {
    const key = JSON.stringify(conversations);
    let texts = memo.get(key);
    if (!texts) {
      texts = (await generateReplies(model, tokenizer, conversations, opts)).texts;
      memo.set(key, texts);
    }
    return texts;
  };
}

/** Runs the tiny world's evaluation of `policy` against `base`; see the module doc. */
export async function tinyEval(o: TinyEvalInputs): Promise<TinyEvalResult> {
  const sampling = {
    temperature: o.temperature ?? 0,
    maxNewTokens: o.maxNewTokens ?? 48,
    seed: o.seed ?? 0,
  };
  const genOpts = { ...sampling, batchSize: o.batchSize ?? 16 };
  const heldOut = o.heldOut ?? {};
  const split = heldOut.split ?? "heldout";
  const set = evalSetOf(split);
  const tasks = heldOutTasks({
    seed: heldOut.seed ?? set.seed,
    perCell: heldOut.perCell,
    split: set.split,
  });
  const conversations = tasks.map(solverMessages);
  const policyGen = memoGenerator(o.policy, o.tokenizer, genOpts);
  const baseGen = memoGenerator(o.base, o.tokenizer, genOpts);
  // The same conversations evaluateTinyWorld asks for first: generated once, reused there.
  const policyAnswers = await policyGen(conversations);
  const baseAnswers = await baseGen(conversations);
  const policy = await evaluateTinyWorld(policyGen, heldOut);
  const base = await evaluateTinyWorld(baseGen, heldOut);

  const judge = o.judge ?? new VerifierTaskReward();
  const scores = await scoreChecked(judge, [
    ...tasks.map((t, i) => ({ query: t.text, answer: policyAnswers[i] })),
    ...tasks.map((t, i) => ({ query: t.text, answer: baseAnswers[i] })),
  ]);
  const pairs = tasks.map((t, i) => ({
    family: t.family,
    level: t.level,
    policyScore: scores[i],
    baseScore: scores[tasks.length + i],
  }));
  const winRate = winRates(pairs.map((p) => ({ ...p, subset: p.family })));
  const byLevel = winRates(pairs.map((p) => ({ ...p, subset: String(p.level) })));
  const nSamples = Math.min(o.samples ?? 8, tasks.length);
  // Spread the samples over the set (it is ordered family-major, then level).
  const step = tasks.length / Math.max(1, nSamples);
  const samples = Array.from({ length: nSamples }, (_, k) => {
    const i = Math.floor(k * step);
    return {
      task: tasks[i].text,
      level: tasks[i].level,
      answer: tasks[i].answer,
      policy: policyAnswers[i],
      base: baseAnswers[i],
    };
  });
  return {
    split,
    sampling,
    policy,
    base,
    judge: judge.name,
    winRate,
    winRateByLevel: byLevel.perSubset,
    samples,
  };
}

/** The `tiny` evaluation of an RL run: {@link tinyEval} on the `eval` section, as eval.json. */
export const tinyEvaluation: Evaluation = async (i) => {
  const e = i.params;
  const result = await tinyEval({
    policy: i.policy,
    base: i.base,
    tokenizer: i.tokenizer,
    heldOut: {
      split: e.split,
      perCell: e.perCell,
      judgeCases: e.judgeCases,
      challengerSamples: e.challengerSamples,
      judgePrompt: i.prompts.judge,
      challengerPrompt: i.prompts.challenger,
    },
    temperature: e.temperature,
    maxNewTokens: e.maxNewTokens,
    seed: i.seed,
    batchSize: e.batchSize,
  });
  return {
    files: [{ path: "eval.json", content: JSON.stringify(result, null, 2) + "\n" }],
    summary:
      `eval: ${result.split === "validation" ? "validation" : "held-out"} accuracy ${
        result.policy.solver.overall.accuracy.toFixed(3)
      } (base ` +
      `${result.base.solver.overall.accuracy.toFixed(3)}), win rate ` +
      `${result.winRate.overall.mean.toFixed(3)}`,
  };
};
