/**
 * AlpacaEval-style evaluation with a reward model as judge: the policy and the base model answer
 * every instruction of the eval set (chat template, engine generate(), the paper's temperature
 * 0.01 by default), the judge scores each (instruction, answer) pair, and the policy wins an
 * instruction when its answer scores higher than the base's (ties count half). Win rates are
 * reported overall and per subset with standard errors, and both models' outputs are returned
 * as AlpacaEval `model_outputs.json` content so the official tool can judge the same outputs.
 *
 * Policy and base sample with the same seed and stream (paired noise). The base's replies can be
 * cached on disk by (model hash, eval set hash, prompts, sampling parameters).
 *
 * @module
 */
import type { LlamaModel } from "../model/llama.ts";
import type { ChatTokenizer } from "../model/tokenizer.ts";
import { modelOutputsJson } from "../data/instructions.ts";
import { type RewardItem, scoreChecked, type TaskReward } from "../rewards/reward.ts";
import { type WinRates, winRates } from "./winrate.ts";
import { type EvalSet, loadEvalSet } from "./eval_set.ts";
import type { Evaluation } from "./evaluation.ts";
import { RewardModel } from "../rewards/reward_model.ts";
import { resolveFileSource } from "../data/file_source.ts";
import { generateReplies, type Replies, type ReplyOptions } from "../model/chat_replies.ts";
import {
  readCachedReplies,
  replyCacheKey,
  replyCachePath,
  writeCachedReplies,
} from "./reply_cache.ts";

/** The paper's evaluation temperature. */
export const ALPACA_EVAL_TEMPERATURE = 0.01;

/** Inputs of {@link alpacaEval}. */
export interface AlpacaEvalOptions {
  policy: LlamaModel;
  base: LlamaModel;
  /** The judge: normally the reward model (any {@link TaskReward} works). */
  rewardModel: TaskReward;
  /** The policy's and base's tokenizer and chat template (they share one). */
  tokenizer: ChatTokenizer;
  evalSet: EvalSet;
  /** Sampling temperature (default 0.01, as in the paper). */
  temperature?: number;
  topP?: number;
  maxNewTokens: number;
  seed: number;
  /** RNG stream (default 0). */
  stream?: number;
  /** Conversations per generate() call (default 8). */
  batchSize?: number;
  /** `generator` names in model_outputs.json (default "policy" and "base"). */
  policyName?: string;
  baseName?: string;
  /** Reuse the base's replies from `dir` when `modelHash` and everything else match. */
  baseCache?: { dir: string; modelHash: string };
}

/** Summary of one model's answers. */
export interface ModelAnswerStats {
  generator: string;
  /** Mean judge score. */
  meanScore: number;
  /** Mean reply length in generated tokens (stop token included). */
  meanTokens: number;
  /** Share of replies that ended on a stop token (the rest hit maxNewTokens). */
  stoppedShare: number;
}

/** The result of {@link alpacaEval}: plain JSON (the caller writes it as eval.json). */
export interface AlpacaEvalResult {
  evalSet: { source: string; hash: string; n: number; subsets: Record<string, number> };
  sampling: {
    temperature: number;
    topP: number;
    maxNewTokens: number;
    seed: number;
    stream: number;
  };
  judge: string;
  /** Policy vs base: wins, ties, losses, win rate overall and per subset with standard errors. */
  winRate: WinRates;
  policy: ModelAnswerStats;
  base: ModelAnswerStats & { cached: boolean; cacheFile: string | null };
  /** Judge scores per instruction, in eval-set order. */
  scores: { policy: number[]; base: number[] };
  /** AlpacaEval model_outputs.json content of each model. */
  modelOutputs: { policy: string; base: string };
}

function answerStats(generator: string, scores: number[], r: Replies): ModelAnswerStats {
  const n = scores.length;
  return {
    generator,
    meanScore: scores.reduce((a, b) => a + b, 0) / n,
    meanTokens: r.tokens.reduce((a, t) => a + t.length, 0) / n,
    stoppedShare: r.stopped.filter(Boolean).length / n,
  };
}

/** Runs the evaluation; see the module doc. */
export async function alpacaEval(o: AlpacaEvalOptions): Promise<AlpacaEvalResult> {
  const items = o.evalSet.items;
  if (items.length === 0) throw new Error(`alpacaEval: ${o.evalSet.source} holds no instructions`);
  const temperature = o.temperature ?? ALPACA_EVAL_TEMPERATURE;
  const sampling = {
    temperature,
    topP: o.topP ?? 1,
    maxNewTokens: o.maxNewTokens,
    seed: o.seed,
    stream: o.stream ?? 0,
  };
  const replyOpts: ReplyOptions = { ...sampling, batchSize: o.batchSize };
  const conversations = items.map((it) => [{ role: "user", content: it.prompt }]);
  const policyName = o.policyName ?? "policy", baseName = o.baseName ?? "base";

  const policyReplies = await generateReplies(o.policy, o.tokenizer, conversations, replyOpts);

  let baseReplies: Replies | null = null;
  let cacheFile: string | null = null;
  let cached = false;
  let key = "";
  if (o.baseCache) {
    key = replyCacheKey({
      modelHash: o.baseCache.modelHash,
      evalSetHash: o.evalSet.hash,
      prompts: conversations.map((c) => o.tokenizer.encodeChat(c, { addGenerationPrompt: true })),
      ...sampling,
    });
    cacheFile = replyCachePath(o.baseCache.dir, key);
    baseReplies = await readCachedReplies(o.baseCache.dir, key, items.length);
    cached = baseReplies !== null;
  }
  if (!baseReplies) {
    baseReplies = await generateReplies(o.base, o.tokenizer, conversations, replyOpts);
    if (o.baseCache) {
      await writeCachedReplies(o.baseCache.dir, key, {
        modelHash: o.baseCache.modelHash,
        evalSet: { source: o.evalSet.source, hash: o.evalSet.hash },
        sampling,
      }, baseReplies);
    }
  }

  // One judge call over both sides: the reward model batches them together.
  const pairs: RewardItem[] = [
    ...items.map((it, i) => ({ query: it.prompt, answer: policyReplies.texts[i] })),
    ...items.map((it, i) => ({ query: it.prompt, answer: baseReplies!.texts[i] })),
  ];
  const scores = await scoreChecked(o.rewardModel, pairs);
  const policyScores = scores.slice(0, items.length), baseScores = scores.slice(items.length);
  const subsets: Record<string, number> = {};
  for (const it of items) subsets[it.dataset] = (subsets[it.dataset] ?? 0) + 1;
  return {
    evalSet: { source: o.evalSet.source, hash: o.evalSet.hash, n: items.length, subsets },
    sampling,
    judge: o.rewardModel.name,
    winRate: winRates(items.map((it, i) => ({
      subset: it.dataset,
      policyScore: policyScores[i],
      baseScore: baseScores[i],
    }))),
    policy: answerStats(policyName, policyScores, policyReplies),
    base: { ...answerStats(baseName, baseScores, baseReplies), cached, cacheFile },
    scores: { policy: policyScores, base: baseScores },
    modelOutputs: {
      policy: modelOutputsJson(items, policyReplies.texts, policyName),
      base: modelOutputsJson(items, baseReplies.texts, baseName),
    },
  };
}

/**
 * The `alpaca` evaluation of an RL run: the policy against the base on the manifest's eval set,
 * judged by the run's reward model; eval.json plus both models' AlpacaEval outputs.
 */
export const alpacaEvaluation: Evaluation = async (i) => {
  const e = i.params;
  if (!(i.taskReward instanceof RewardModel)) {
    throw new Error("eval.kind alpaca needs reward.kind model (the reward model is the judge)");
  }
  const evalSet = await loadEvalSet(resolveFileSource(e.evalSet, "eval.evalSet"), {
    limit: e.limit,
  });
  const result = await alpacaEval({
    policy: i.policy,
    base: i.base,
    rewardModel: i.taskReward,
    tokenizer: i.tokenizer,
    evalSet,
    temperature: e.temperature,
    maxNewTokens: e.maxNewTokens,
    seed: i.seed,
    batchSize: e.batchSize,
    policyName: i.experiment,
    baseName: "base",
  });
  const { modelOutputs, ...summary } = result;
  return {
    files: [
      { path: "eval.json", content: JSON.stringify(summary, null, 2) + "\n" },
      { path: "model_outputs.json", content: modelOutputs.policy },
      { path: "base_outputs.json", content: modelOutputs.base },
    ],
    summary: `eval: win rate ${result.winRate.overall.mean.toFixed(3)} against the base`,
  };
};
