/**
 * AlpacaEval-style evaluation of the policy against its base: both models answer every
 * instruction of the eval set (chat template, engine generate(), the paper's temperature 0.01
 * by default; same seed and stream, paired noise), then a judge decides, per the manifest's
 * `eval.judge`:
 *
 * - `llm` (independent, as the paper): an instruct model of its own compares the two outputs
 *   pairwise in both presentation orders and its label probabilities give a soft preference
 *   (pairwise_judge.ts). Training's models and optimizer state are freed first, so the judge's
 *   memory is not added to training's. Reported: AlpacaEval's weighted win rate and its
 *   length-controlled win rate (length_controlled.ts), overall and per subset with standard
 *   errors, and `annotations.json` in AlpacaEval's format.
 * - `reward-model`: the training reward model scores each (instruction, output) and the policy
 *   wins an instruction when its output scores higher (ties count half). A policy that learnt to
 *   please the reward model wins by construction, so results and logs say "judged by the
 *   training reward model".
 *
 * Both write the two models' outputs as AlpacaEval `model_outputs.json` content, so the official
 * tool can judge the same outputs. The base's replies can be cached on disk by (model hash, eval
 * set hash, prompts, sampling parameters).
 *
 * @module
 */
import { basename } from "node:path";
import type { LlamaModel } from "../model/llama.ts";
import { type ChatTokenizer, loadTokenizer } from "../model/tokenizer.ts";
import { modelOutputsJson } from "../data/instructions.ts";
import { type RewardItem, scoreChecked, type TaskReward } from "../rewards/reward.ts";
import { softWinRates, type WinRates, winRates } from "./winrate.ts";
import { type EvalSet, loadEvalSet } from "./eval_set.ts";
import type { EvalParams, Evaluation, EvaluationInputs, JudgeParams } from "./evaluation.ts";
import { RewardModel } from "../rewards/reward_model.ts";
import { pathKind, resolveFileSource } from "../data/file_source.ts";
import { projectPath } from "../util/project_path.ts";
import { UserError } from "../util/user_error.ts";
import { collectMissingInputs, missingInput, MissingInputsError } from "../util/missing_inputs.ts";
import { loadModelSource, modelSourceInputs } from "../data/model_source.ts";
import { generateReplies, type Replies, type ReplyOptions } from "../model/chat_replies.ts";
import {
  readCachedReplies,
  replyCacheKey,
  replyCachePath,
  writeCachedReplies,
} from "./reply_cache.ts";
import { JUDGE_PLACEHOLDERS, PairwiseJudge } from "./pairwise_judge.ts";
import { annotationRecords, annotationsJson } from "./annotations.ts";
import {
  type LengthControlledResult,
  lengthControlledWinRate,
  pythonLength,
} from "./length_controlled.ts";
import { difficultiesFor, readInstructionDifficulty } from "./instruction_difficulty.ts";

/** The paper's evaluation temperature. */
export const ALPACA_EVAL_TEMPERATURE = 0.01;

/** How results and logs name the reward-model judge. */
export const REWARD_MODEL_JUDGE_LABEL = "judged by the training reward model";

/** What both judges start from: the eval set, both models and how they sample. */
export interface AlpacaEvalOptions {
  policy: LlamaModel;
  base: LlamaModel;
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

/** Inputs of {@link alpacaEval}: the reward model judges. */
export interface RewardModelJudgedOptions extends AlpacaEvalOptions {
  /** The judge: normally the training reward model (any {@link TaskReward} works). */
  rewardModel: TaskReward;
}

/** A loaded LLM judge and how results name it. */
export interface LoadedJudge {
  judge: PairwiseJudge;
  description: string;
}

/** Inputs of {@link alpacaEvalLlm}: an LLM judges. */
export interface LlmJudgedOptions extends AlpacaEvalOptions {
  /** Frees training's GPU memory; called after both models answered, before the judge loads. */
  releaseTraining?: () => void;
  /** Loads the judge (after releaseTraining); it is freed when the judging is done. */
  loadJudge: () => Promise<LoadedJudge>;
  /** AlpacaEval's difficulty of each eval-set instruction (the LC fit's instruction term). */
  instructionDifficulty?: number[];
  /** Largest share of unreadable verdicts before the evaluation fails. */
  maxUnreadable: number;
  log?: (line: string) => void;
}

/** Summary of one model's answers. */
export interface ModelAnswerStats {
  generator: string;
  /** Mean reward-model score (reward-model judge only). */
  meanScore?: number;
  /** Mean reply length in generated tokens (stop token included). */
  meanTokens: number;
  /** Mean reply length in characters (code points; the LC fit's length). */
  meanChars: number;
  /** Share of replies that ended on a stop token (the rest hit maxNewTokens). */
  stoppedShare: number;
}

/** What both results hold. */
interface CommonResult {
  evalSet: { source: string; hash: string; n: number; subsets: Record<string, number> };
  sampling: {
    temperature: number;
    topP: number;
    maxNewTokens: number;
    seed: number;
    stream: number;
  };
  policy: ModelAnswerStats;
  base: ModelAnswerStats & { cached: boolean; cacheFile: string | null };
  /** AlpacaEval model_outputs.json content of each model. */
  modelOutputs: { policy: string; base: string };
}

/** The result of {@link alpacaEval}: plain JSON (the caller writes it as eval.json). */
export interface AlpacaEvalResult extends CommonResult {
  judge: { kind: "reward-model"; description: string; model: string };
  /** Policy vs base: wins, ties, losses, win rate overall and per subset with standard errors. */
  winRate: WinRates;
  /** Judge scores per instruction, in eval-set order. */
  scores: { policy: number[]; base: number[] };
}

/** The result of {@link alpacaEvalLlm}: plain JSON, plus annotations.json content. */
export interface LlmAlpacaEvalResult extends CommonResult {
  judge: {
    kind: "llm";
    description: string;
    model: string;
    labels: [string, string];
    labelTopK: number;
    /** Instructions without a preference (an unreadable order), left out of the rates. */
    unreadable: number;
    /** Mean P(the first-shown output is better) over readable readings: 0.5 = no position bias. */
    firstShownPreferred: number;
    /** Mean share of the judge's next-token distribution on the two labels. */
    meanLabelMass: number;
  };
  /** AlpacaEval's weighted win rate: the mean preference, overall and per subset, with SEs. */
  winRate: WinRates;
  /** AlpacaEval 2.0's length-controlled win rate. */
  lengthControlled: LengthControlledResult;
  /** annotations.json content. */
  annotations: string;
}

function answerStats(generator: string, r: Replies, scores?: number[]): ModelAnswerStats {
  const n = r.texts.length;
  return {
    generator,
    ...(scores ? { meanScore: scores.reduce((a, b) => a + b, 0) / n } : {}),
    meanTokens: r.tokens.reduce((a, t) => a + t.length, 0) / n,
    meanChars: r.texts.reduce((a, t) => a + pythonLength(t), 0) / n,
    stoppedShare: r.stopped.filter(Boolean).length / n,
  };
}

/** Both models' replies, the base's from the cache when it has them. */
async function answerBoth(o: AlpacaEvalOptions) {
  const items = o.evalSet.items;
  if (items.length === 0) throw new Error(`alpacaEval: ${o.evalSet.source} holds no instructions`);
  const sampling = {
    temperature: o.temperature ?? ALPACA_EVAL_TEMPERATURE,
    topP: o.topP ?? 1,
    maxNewTokens: o.maxNewTokens,
    seed: o.seed,
    stream: o.stream ?? 0,
  };
  const replyOpts: ReplyOptions = { ...sampling, batchSize: o.batchSize };
  const conversations = items.map((it) => [{ role: "user", content: it.prompt }]);
  const policy = await generateReplies(o.policy, o.tokenizer, conversations, replyOpts);

  let base: Replies | null = null;
  let cacheFile: string | null = null;
  let key = "";
  if (o.baseCache) {
    key = replyCacheKey({
      modelHash: o.baseCache.modelHash,
      evalSetHash: o.evalSet.hash,
      prompts: conversations.map((c) => o.tokenizer.encodeChat(c, { addGenerationPrompt: true })),
      ...sampling,
    });
    cacheFile = replyCachePath(o.baseCache.dir, key);
    base = await readCachedReplies(o.baseCache.dir, key, items.length);
  }
  const cached = base !== null;
  if (!base) {
    base = await generateReplies(o.base, o.tokenizer, conversations, replyOpts);
    if (o.baseCache) {
      await writeCachedReplies(o.baseCache.dir, key, {
        modelHash: o.baseCache.modelHash,
        evalSet: { source: o.evalSet.source, hash: o.evalSet.hash },
        sampling,
      }, base);
    }
  }
  const subsets: Record<string, number> = {};
  for (const it of items) subsets[it.dataset] = (subsets[it.dataset] ?? 0) + 1;
  const policyName = o.policyName ?? "policy", baseName = o.baseName ?? "base";
  return {
    items,
    policy,
    base,
    policyName,
    baseName,
    common: (policyScores?: number[], baseScores?: number[]): CommonResult => ({
      evalSet: { source: o.evalSet.source, hash: o.evalSet.hash, n: items.length, subsets },
      sampling,
      policy: answerStats(policyName, policy, policyScores),
      base: { ...answerStats(baseName, base!, baseScores), cached, cacheFile },
      modelOutputs: {
        policy: modelOutputsJson(items, policy.texts, policyName),
        base: modelOutputsJson(items, base!.texts, baseName),
      },
    }),
  };
}

/** The evaluation judged by a reward model; see the module doc. */
export async function alpacaEval(o: RewardModelJudgedOptions): Promise<AlpacaEvalResult> {
  const a = await answerBoth(o);
  // One judge call over both sides: the reward model batches them together.
  const pairs: RewardItem[] = [
    ...a.items.map((it, i) => ({ query: it.prompt, answer: a.policy.texts[i] })),
    ...a.items.map((it, i) => ({ query: it.prompt, answer: a.base.texts[i] })),
  ];
  const scores = await scoreChecked(o.rewardModel, pairs);
  const n = a.items.length;
  const policyScores = scores.slice(0, n), baseScores = scores.slice(n);
  const { evalSet, sampling, ...rest } = a.common(policyScores, baseScores);
  return {
    evalSet,
    sampling,
    judge: {
      kind: "reward-model",
      description: REWARD_MODEL_JUDGE_LABEL,
      model: o.rewardModel.name,
    },
    winRate: winRates(a.items.map((it, i) => ({
      subset: it.dataset,
      policyScore: policyScores[i],
      baseScore: baseScores[i],
    }))),
    ...rest,
    scores: { policy: policyScores, base: baseScores },
  };
}

/** The evaluation judged by an LLM; see the module doc. */
export async function alpacaEvalLlm(o: LlmJudgedOptions): Promise<LlmAlpacaEvalResult> {
  const log = o.log ?? (() => {});
  const n = o.evalSet.items.length;
  if (o.instructionDifficulty && o.instructionDifficulty.length !== n) {
    throw new Error(
      `alpacaEval: ${o.instructionDifficulty.length} instruction difficulties for ${n} instructions`,
    );
  }
  const a = await answerBoth(o);
  if (o.releaseTraining) {
    o.releaseTraining();
    log("evaluation: freed training's models and optimizer state before loading the judge");
  }
  const { judge, description } = await o.loadJudge();
  let verdicts;
  try {
    log(`evaluation: ${description} judges ${n} pairs in both orders`);
    // AlpacaEval's convention: output_1 is the baseline's, output_2 the evaluated model's.
    verdicts = await judge.compare(a.items.map((it, i) => ({
      instruction: it.prompt,
      output1: a.base.texts[i],
      output2: a.policy.texts[i],
    })));
  } finally {
    judge.model.destroy();
  }
  const unreadable = verdicts.map((v, i) => (v.preference === null ? i : -1)).filter((i) => i >= 0);
  if (unreadable.length === n || unreadable.length > o.maxUnreadable * n) {
    throw new UserError(
      `eval.judge: ${unreadable.length} of ${n} verdicts are unreadable (neither label ` +
        `"${judge.labels[0]}"/"${judge.labels[1]}" among the judge's top ${judge.labelTopK} next ` +
        `tokens in an order; first: instruction ${unreadable[0]}), more than maxUnreadable ` +
        `${o.maxUnreadable}. Is ${description} an instruct model, and does the prompt ask for ` +
        `exactly one label? (eval.judge.labelTopK=0 reads every verdict, e.g. for random weights)`,
    );
  }
  if (unreadable.length > 0) {
    log(`evaluation: ${unreadable.length} of ${n} verdicts unreadable, left out of the rates`);
  }
  const judged = a.items.map((_, i) => i).filter((i) => verdicts[i].preference !== null);
  const readings = verdicts.flatMap((v) => v.orders).filter((r) => r.readable);
  const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  const lengthControlled = lengthControlledWinRate(judged.map((i) => ({
    preference: verdicts[i].preference!,
    modelChars: pythonLength(a.policy.texts[i]),
    baselineChars: pythonLength(a.base.texts[i]),
    subset: a.items[i].dataset,
    ...(o.instructionDifficulty ? { difficulty: o.instructionDifficulty[i] } : {}),
  })));
  const { evalSet, sampling, ...rest } = a.common();
  return {
    evalSet,
    sampling,
    judge: {
      kind: "llm",
      description: `judged by ${description} (an LLM judge, pairwise in both orders)`,
      model: description,
      labels: [judge.labels[0], judge.labels[1]],
      labelTopK: judge.labelTopK,
      unreadable: unreadable.length,
      firstShownPreferred: mean(readings.map((r) => r.pFirst)),
      meanLabelMass: mean(readings.map((r) => r.labelMass)),
    },
    winRate: softWinRates(judged.map((i) => ({
      subset: a.items[i].dataset,
      preference: verdicts[i].preference!,
    }))),
    lengthControlled,
    ...rest,
    annotations: annotationsJson(annotationRecords(
      a.items,
      { name: a.baseName, outputs: a.base.texts },
      { name: a.policyName, outputs: a.policy.texts },
      verdicts,
      judge.labels,
    )),
  };
}

/** Reads the judge prompt template (a manifest path), checking its placeholders. */
export function readJudgeTemplate(file: string): string {
  const path = projectPath(file);
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new UserError(`eval.judge.promptFile: ${path}: cannot read (${(e as Error).message})`);
  }
  for (const p of JUDGE_PLACEHOLDERS) {
    if (!text.includes(`{${p}}`)) {
      throw new UserError(`eval.judge.promptFile: ${path} has no {${p}} placeholder`);
    }
  }
  return text;
}

/** Said with a missing judge: the choice of judge is the user's. */
const JUDGE_CHOICE = "any Llama-architecture instruct model works; a larger one, e.g. " +
  "meta-llama/Llama-3.3-70B-Instruct, is closer to the paper's judge";

/** The judge's model inputs; a missing judge is reported with {@link JUDGE_CHOICE}. */
function judgeModelInputs(j: JudgeParams): string[] {
  try {
    return collectMissingInputs(() => modelSourceInputs(j.model, "eval.judge.model"));
  } catch (e) {
    if (!(e instanceof MissingInputsError)) throw e;
    for (const m of e.missing) missingInput(`${m} (${JUDGE_CHOICE})`);
    return [];
  }
}

/**
 * The files the `alpaca` evaluation reads (they enter the run id): the eval set and, for an LLM
 * judge, its model, prompt and difficulty table. Each is checked now, so a missing judge (the
 * error says what to download and where) or a malformed file fails before training starts.
 */
export function alpacaEvalInputs(e: EvalParams): string[] {
  const out = [resolveFileSource(e.evalSet, "eval.evalSet")];
  const j = e.judge;
  if (j?.kind === "llm") {
    out.push(...judgeModelInputs(j));
    if (pathKind(projectPath(j.promptFile)) !== "file") {
      missingInput(`eval.judge.promptFile: ${projectPath(j.promptFile)} does not exist`);
    } else {
      readJudgeTemplate(j.promptFile);
      out.push(j.promptFile);
    }
    if (j.instructionDifficulty) {
      const path = resolveFileSource(j.instructionDifficulty, "eval.judge.instructionDifficulty");
      if (path) {
        readInstructionDifficulty(path);
        out.push(path);
      }
    }
  }
  return out.filter((p) => p !== "");
}

/** Loads the LLM judge of `j` (model, its tokenizer, prompt) onto the policy's GPU. */
function judgeLoader(i: EvaluationInputs, j: JudgeParams): () => Promise<LoadedJudge> {
  const gpu = i.policy.gpu;
  const template = readJudgeTemplate(j.promptFile);
  return async () => {
    const m = await loadModelSource(gpu, j.model, "eval.judge.model", j.storage);
    try {
      const tokenizer = await loadTokenizer(m.tokenizerDir);
      // A folder's name, not its path: eval.json should not depend on where the weights sit.
      const description = m.bundle
        ? `${basename(m.bundle.dir)}/${basename(m.dir)}`
        : m.dir
        ? basename(m.dir)
        : m.description;
      const judge = new PairwiseJudge(m.model, tokenizer, {
        template,
        templateSource: j.promptFile,
        labels: j.labels,
        batchSize: j.batchSize,
        labelTopK: j.labelTopK,
      }, m.description);
      return { judge, description };
    } catch (e) {
      m.model.destroy();
      throw e;
    }
  };
}

/** How a rate reads in a log line. */
const pct = (r: { mean: number; se: number | null }) =>
  `${(100 * r.mean).toFixed(1)}%${r.se === null ? "" : ` ± ${(100 * r.se).toFixed(1)}`}`;

/**
 * The `alpaca` evaluation of an RL run: the policy against the base on the manifest's eval set,
 * judged as `eval.judge` says; eval.json, both models' AlpacaEval outputs and, for an LLM
 * judge, annotations.json.
 */
export const alpacaEvaluation: Evaluation = async (i) => {
  const e = i.params;
  const j = e.judge;
  if (!j) throw new UserError('eval.judge: required with eval.kind "alpaca"');
  const evalSetPath = resolveFileSource(e.evalSet, "eval.evalSet");
  const evalSet = await loadEvalSet(evalSetPath, { limit: e.limit });
  const common = {
    policy: i.policy,
    base: i.base,
    tokenizer: i.tokenizer,
    evalSet,
    temperature: e.temperature,
    maxNewTokens: e.maxNewTokens,
    seed: i.seed,
    batchSize: e.batchSize,
    policyName: i.experiment,
    baseName: "base",
  };
  if (j.kind === "reward-model") {
    if (!(i.taskReward instanceof RewardModel)) {
      throw new UserError(
        'eval.judge.kind "reward-model" needs reward.kind "model" (the reward model is the judge)',
      );
    }
    const result = await alpacaEval({ ...common, rewardModel: i.taskReward });
    const { modelOutputs, ...summary } = result;
    return {
      files: [
        { path: "eval.json", content: JSON.stringify(summary, null, 2) + "\n" },
        { path: "model_outputs.json", content: modelOutputs.policy },
        { path: "base_outputs.json", content: modelOutputs.base },
      ],
      summary: `eval: win rate ${pct(result.winRate.overall)} against the base ` +
        `(${REWARD_MODEL_JUDGE_LABEL})`,
    };
  }
  let difficulty: number[] | undefined;
  if (j.instructionDifficulty) {
    const path = resolveFileSource(j.instructionDifficulty, "eval.judge.instructionDifficulty");
    difficulty = difficultiesFor(readInstructionDifficulty(path), evalSet.items.length, path);
  }
  const result = await alpacaEvalLlm({
    ...common,
    releaseTraining: i.releaseTraining,
    loadJudge: judgeLoader(i, j),
    instructionDifficulty: difficulty,
    maxUnreadable: j.maxUnreadable,
    log: i.log,
  });
  const { modelOutputs, annotations, ...summary } = result;
  const lc = result.lengthControlled;
  return {
    files: [
      { path: "eval.json", content: JSON.stringify(summary, null, 2) + "\n" },
      { path: "model_outputs.json", content: modelOutputs.policy },
      { path: "base_outputs.json", content: modelOutputs.base },
      { path: "annotations.json", content: annotations },
    ],
    summary: `eval: win rate ${pct(result.winRate.overall)}, length-controlled ` +
      `${pct(lc.winRate)} (${lc.glm}) against the base, ${result.judge.description}`,
  };
};
