/**
 * The tiny world's pretraining mixture: solver, challenger and judge chat examples drawn from
 * the training side of the task split, index-addressed (example i depends only on the seed, i
 * and the options) so a training run's data position is one integer and resuming replays it.
 *
 * Difficulty: solver and judge examples, the only ones that show answers, are capped at
 * `maxDifficulty` (default MAX_LEVEL - 1) so the base solver has never seen the hardest level's
 * answers: decent on easy tasks, improvable on hard ones. Challenger examples (tasks without
 * answers) span 1..`challengerMaxDifficulty` (default MAX_LEVEL) so the challenger can pose the
 * hardest tasks from the start.
 */

import { type ChatExample, type DatasetFactory, type DatasetProvider } from "../train/data.ts";
import { OPEN_SLOTS, renderChallengerPrompt } from "./challenger.ts";
import { Rng } from "./prng.ts";
import { buildJudgePrompt } from "./rubric.ts";
import { challengerExample, drawJudgeCase, judgeExample, solverExample } from "./examples.ts";
import { generateTaskIn } from "./split.ts";
import { FAMILY_NAMES, FamilyName, MAX_LEVEL } from "./tasks.ts";

/** Share of each role in the mixture (need not sum to 1; normalised). */
export interface RoleWeights {
  solver: number;
  challenger: number;
  judge: number;
}

/** Options of the mixture; every field has a default. */
export interface TinyMixtureOptions {
  /** Hardest level whose answers appear (solver and judge). Default MAX_LEVEL - 1. */
  maxDifficulty?: number;
  /** Hardest level the challenger examples propose. Default MAX_LEVEL. */
  challengerMaxDifficulty?: number;
  /**
   * Hardest level of the tasks in judge examples. Default `maxDifficulty`. The judge is shown a
   * candidate reply, never trained to write an answer, so judging every level leaks none.
   */
  judgeMaxDifficulty?: number;
  /** Shares of judge examples over malformed tasks and tasks past the hardest level. */
  judgeMalformedShare?: number;
  judgeBeyondShare?: number;
  /** Role shares. Default solver 0.6, challenger 0.2, judge 0.2. */
  weights?: Partial<RoleWeights>;
  /** Families drawn (uniformly). Default all. */
  families?: readonly FamilyName[];
  /** Share of challenger examples with empty {task}/{template} slots. Default 0.5. */
  openChallengerShare?: number;
  /** Challenger prompt template with {task} and {template}. Default TINY_CHALLENGER_PROMPT. */
  challengerPrompt?: string;
  /** Judge prompt template with {instruction} and {response}. Default TINY_JUDGE_PROMPT. */
  judgePrompt?: string;
  /**
   * Longest example in tokens of the tiny chat format (one per character plus bos and two per
   * turn); longer draws are redrawn. Default 256, the sft default sequence length.
   */
  maxTokens?: number;
}

/** Defaults of TinyMixtureOptions, resolved (recorded by runs so manifests show them). */
export const TINY_MIXTURE_DEFAULTS = {
  maxDifficulty: MAX_LEVEL - 1,
  challengerMaxDifficulty: MAX_LEVEL,
  weights: { solver: 0.6, challenger: 0.2, judge: 0.2 },
  openChallengerShare: 0.5,
  maxTokens: 256,
} as const;

/** A chat example tagged with the role it trains (for logs and tests). */
export interface TinyExample extends ChatExample {
  role: "solver" | "challenger" | "judge";
}

interface Resolved {
  maxDifficulty: number;
  challengerMaxDifficulty: number;
  judgeMaxDifficulty: number;
  judgeMalformedShare?: number;
  judgeBeyondShare?: number;
  weights: number[];
  families: readonly FamilyName[];
  openChallengerShare: number;
  challengerPrompt?: string;
  judgePrompt?: string;
  maxTokens: number;
}

function checkLevel(value: unknown, field: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > MAX_LEVEL) {
    throw new Error(`tiny mixture: ${field} must be an integer in 1..${MAX_LEVEL}, got ${value}`);
  }
  return value;
}

function resolve(o: TinyMixtureOptions): Resolved {
  const w = { ...TINY_MIXTURE_DEFAULTS.weights, ...o.weights };
  for (const [k, v] of Object.entries(w)) {
    if (typeof v !== "number" || !(v >= 0) || !Number.isFinite(v)) {
      throw new Error(`tiny mixture: weights.${k} must be a non-negative number, got ${v}`);
    }
  }
  if (w.solver + w.challenger + w.judge <= 0) {
    throw new Error("tiny mixture: weights are all zero");
  }
  const families = o.families ?? FAMILY_NAMES;
  if (families.length === 0) throw new Error("tiny mixture: families is empty");
  for (const f of families) {
    if (!FAMILY_NAMES.includes(f)) {
      throw new Error(`tiny mixture: families: unknown "${f}" (known: ${FAMILY_NAMES.join(", ")})`);
    }
  }
  for (const k of ["judgeMalformedShare", "judgeBeyondShare"] as const) {
    const v = o[k];
    if (v !== undefined && (typeof v !== "number" || !(v >= 0 && v <= 1))) {
      throw new Error(`tiny mixture: ${k} must be in [0, 1], got ${v}`);
    }
  }
  if ((o.judgeMalformedShare ?? 0) + (o.judgeBeyondShare ?? 0) > 1) {
    throw new Error("tiny mixture: judgeMalformedShare + judgeBeyondShare must be at most 1");
  }
  const open = o.openChallengerShare ?? TINY_MIXTURE_DEFAULTS.openChallengerShare;
  if (typeof open !== "number" || !(open >= 0 && open <= 1)) {
    throw new Error(`tiny mixture: openChallengerShare must be in [0, 1], got ${open}`);
  }
  // Check prompt templates now, not at the first example that uses them.
  if (o.challengerPrompt !== undefined) renderChallengerPrompt(OPEN_SLOTS, o.challengerPrompt);
  if (o.judgePrompt !== undefined) buildJudgePrompt("", "", o.judgePrompt);
  const maxDifficulty = checkLevel(
    o.maxDifficulty ?? TINY_MIXTURE_DEFAULTS.maxDifficulty,
    "maxDifficulty",
  );
  return {
    maxDifficulty,
    judgeMaxDifficulty: checkLevel(o.judgeMaxDifficulty ?? maxDifficulty, "judgeMaxDifficulty"),
    judgeMalformedShare: o.judgeMalformedShare,
    judgeBeyondShare: o.judgeBeyondShare,
    challengerMaxDifficulty: checkLevel(
      o.challengerMaxDifficulty ?? TINY_MIXTURE_DEFAULTS.challengerMaxDifficulty,
      "challengerMaxDifficulty",
    ),
    weights: [w.solver, w.challenger, w.judge],
    families,
    openChallengerShare: open,
    challengerPrompt: o.challengerPrompt,
    judgePrompt: o.judgePrompt,
    maxTokens: checkMaxTokens(o.maxTokens ?? TINY_MIXTURE_DEFAULTS.maxTokens),
  };
}

function checkMaxTokens(value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 64) {
    throw new Error(`tiny mixture: maxTokens must be an integer >= 64, got ${value}`);
  }
  return value;
}

/** Tokens of a chat in the tiny format: bos, then role + content + eos per turn. */
export function tinyChatTokens(example: ChatExample): number {
  return 1 + example.messages.reduce((n, m) => n + 2 + m.content.length, 0);
}

function exampleAt(seed: number, index: number, r: Resolved): TinyExample {
  if (!Number.isInteger(index) || index < 0 || index >= 4294967296) {
    throw new Error(`tiny mixture: example index must be an integer in [0, 2^32), got ${index}`);
  }
  const rng = new Rng(seed, index);
  // Redraw from the same stream until the example fits: still a function of (seed, index).
  for (let tries = 0; tries < 1000; tries++) {
    const e = drawExample(rng, r);
    if (tinyChatTokens(e) <= r.maxTokens) return e;
  }
  throw new Error(`tiny mixture: no example of at most ${r.maxTokens} tokens in 1000 draws`);
}

function drawExample(rng: Rng, r: Resolved): TinyExample {
  const role = (["solver", "challenger", "judge"] as const)[rng.weighted(r.weights)];
  if (role === "solver") {
    const task = generateTaskIn("train", rng, rng.pick(r.families), rng.int(1, r.maxDifficulty));
    return { role, ...solverExample(task) };
  }
  if (role === "challenger") {
    const open = rng.next() < r.openChallengerShare;
    const level = rng.int(1, r.challengerMaxDifficulty);
    const task = generateTaskIn("train", rng, rng.pick(r.families), level);
    return { role, ...challengerExample(task, open, r.challengerPrompt) };
  }
  const c = drawJudgeCase(rng, "train", {
    maxLevel: r.judgeMaxDifficulty,
    families: r.families,
    malformedShare: r.judgeMalformedShare,
    beyondShare: r.judgeBeyondShare,
  });
  return { role, ...judgeExample(c.instruction, c.response, r.judgePrompt) };
}

/** `count` examples of the mixture: example i of `tinyDataset(seed, options)` for i < count. */
export function tinyMixture(
  options: TinyMixtureOptions & { seed: number; count: number },
): TinyExample[] {
  const r = resolve(options);
  if (!Number.isInteger(options.count) || options.count < 0) {
    throw new Error(`tiny mixture: count must be a non-negative integer, got ${options.count}`);
  }
  return Array.from({ length: options.count }, (_, i) => exampleAt(options.seed, i, r));
}

/** An unbounded, index-addressed DatasetProvider over the mixture, for the SFT trainer. */
export function tinyDataset(seed: number, options: TinyMixtureOptions = {}): DatasetProvider {
  const r = resolve(options);
  return {
    description: `tiny-world mixture (seed ${seed}, ${JSON.stringify({ ...options })})`,
    size: null,
    example: (index: number) => {
      const { messages } = exampleAt(seed, index, r);
      return { messages };
    },
  };
}

const OPTION_KEYS = [
  "maxTokens",
  "maxDifficulty",
  "challengerMaxDifficulty",
  "judgeMaxDifficulty",
  "judgeMalformedShare",
  "judgeBeyondShare",
  "weights",
  "families",
  "openChallengerShare",
  "challengerPrompt",
  "judgePrompt",
];

/** Name of the mixture in the dataset registry (an `sft` manifest's `data.generator`). */
export const TINY_DATASET_NAME = "tiny-world";

/**
 * DatasetFactory for manifests, registered as TINY_DATASET_NAME when this module loads: params
 * are TinyMixtureOptions; unknown keys and bad values are errors naming the field.
 */
export const tinyDatasetFactory: DatasetFactory = (params, seed) => {
  for (const k of Object.keys(params)) {
    if (!OPTION_KEYS.includes(k)) {
      throw new Error(
        `tiny-world dataset: unknown parameter "${k}" (known: ${OPTION_KEYS.join(", ")})`,
      );
    }
  }
  for (const k of ["challengerPrompt", "judgePrompt"]) {
    if (params[k] !== undefined && typeof params[k] !== "string") {
      throw new Error(`tiny-world dataset: ${k} must be a string`);
    }
  }
  if (
    params.weights !== undefined && (typeof params.weights !== "object" || params.weights === null)
  ) {
    throw new Error("tiny-world dataset: weights must be an object {solver, challenger, judge}");
  }
  if (params.families !== undefined && !Array.isArray(params.families)) {
    throw new Error("tiny-world dataset: families must be an array of family names");
  }
  return tinyDataset(seed, params as TinyMixtureOptions);
};
