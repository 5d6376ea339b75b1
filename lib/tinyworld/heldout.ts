/**
 * The tiny world's held-out evaluation: a fixed, seeded set of tasks stratified by family and
 * level (every level, the hardest included), judge cases with rubric labels, and scorers that
 * turn model outputs (generated elsewhere, on the GPU) into exact accuracy per family and
 * level, judge agreement with the rubric, and challenger validity. All pure functions over text.
 *
 * Disjoint from training by construction: held-out tasks come only from the "heldout" side of
 * the hash split (split.ts) and every training generator draws only from the "train" side.
 */

import type { ChatMessage } from "../train/data.ts";
import { ChallengerSlots, familySlots, OPEN_SLOTS, renderChallengerPrompt } from "./challenger.ts";
import { Rng } from "./prng.ts";
import { drawJudgeCase, JudgeCase } from "./examples.ts";
import {
  buildJudgePrompt,
  gradeWithRubric,
  parseJudgeCriteria,
  parseJudgeScore,
  RUBRIC_MAX,
} from "./rubric.ts";
import { generateTaskIn, type Split, splitOf } from "./split.ts";
import { FAMILY_NAMES, FamilyName, MAX_LEVEL, parseTask, Task, verifyAnswer } from "./tasks.ts";

/** Default seed of the held-out set; a fixed constant so every run evaluates the same tasks. */
export const HELD_OUT_SEED = 20260917;

/** Seed of the validation set (for tuning: never the held-out set). */
export const VALIDATION_SEED = 20261130;

/**
 * Which evaluation set: "heldout" (held-out split tasks: the reported results) or "validation"
 * (training-split tasks of another seed: disjoint from the held-out set by the hash split, the
 * set tuning is judged on; easy levels may overlap what pretraining saw).
 */
export type EvalSplit = "heldout" | "validation";

/** The seed and task split of an evaluation set. */
export function evalSetOf(split: EvalSplit): { seed: number; split: Split } {
  return split === "heldout"
    ? { seed: HELD_OUT_SEED, split: "heldout" }
    : { seed: VALIDATION_SEED, split: "train" };
}

/** Options of the held-out task set. */
export interface HeldOutOptions {
  /** Seed (default HELD_OUT_SEED). */
  seed?: number;
  /** Distinct tasks per (family, level) cell (default 10). */
  perCell?: number;
  /** Families (default all). */
  families?: readonly FamilyName[];
  /** Side of the hash split the tasks come from (default "heldout"; "train" for validation). */
  split?: Split;
}

/**
 * The held-out tasks: for every family and every level 1..MAX_LEVEL, `perCell` distinct tasks
 * from the held-out split, in a fixed order (family-major, then level). Each cell has its own
 * random stream, so changing `perCell` or `families` leaves the other cells' tasks alone.
 */
export function heldOutTasks(options: HeldOutOptions = {}): Task[] {
  const seed = options.seed ?? HELD_OUT_SEED;
  const perCell = options.perCell ?? 10;
  if (!Number.isInteger(perCell) || perCell < 1) {
    throw new Error(`held-out set: perCell must be a positive integer, got ${perCell}`);
  }
  const out: Task[] = [];
  for (const family of options.families ?? FAMILY_NAMES) {
    const f = FAMILY_NAMES.indexOf(family);
    if (f < 0) throw new Error(`held-out set: unknown family "${family}"`);
    for (let level = 1; level <= MAX_LEVEL; level++) {
      const rng = new Rng(seed, 1000 + f * 16 + level);
      const seen = new Set<string>();
      for (let tries = 0; seen.size < perCell; tries++) {
        if (tries > 200 * perCell) {
          throw new Error(
            `held-out set: fewer than ${perCell} distinct ${family} level ${level} tasks`,
          );
        }
        const task = generateTaskIn(options.split ?? "heldout", rng, family, level);
        if (seen.has(task.text)) continue;
        seen.add(task.text);
        out.push(task);
      }
    }
  }
  return out;
}

/** A judge case with its rubric label. */
export interface LabelledJudgeCase extends JudgeCase {
  /** The rubric's score 0..7 for (instruction, response). */
  rubricScore: number;
  /** Its stratum: the task's level "1".."5", "malformed" or "beyond" (out of range). */
  category: string;
}

/** The strata of the judge cases: every level, malformed tasks, tasks beyond the range. */
export const JUDGE_CATEGORIES: readonly string[] = [
  ...Array.from({ length: MAX_LEVEL }, (_, i) => String(i + 1)),
  "malformed",
  "beyond",
];

/**
 * Held-out judge cases over held-out tasks, stratified: case i is of category i mod 7 (levels
 * 1..5, malformed, beyond), so every stratum has count/7 cases; labelled by the rubric.
 */
export function heldOutJudgeCases(
  options: { seed?: number; count?: number; split?: Split } = {},
): LabelledJudgeCase[] {
  const rng = new Rng(options.seed ?? HELD_OUT_SEED, 7);
  const count = options.count ?? 140;
  return Array.from({ length: count }, (_, i) => {
    const category = JUDGE_CATEGORIES[i % JUDGE_CATEGORIES.length];
    const only: { taskKind: JudgeCase["taskKind"]; level?: number } =
      category === "malformed" || category === "beyond"
        ? { taskKind: category }
        : { taskKind: "in-range", level: Number(category) };
    const c = drawJudgeCase(rng, options.split ?? "heldout", { maxLevel: MAX_LEVEL, only });
    return { ...c, category, rubricScore: gradeWithRubric(c.instruction, c.response).score };
  });
}

/** The conversation the solver is given for a task (generation adds the assistant turn). */
export function solverMessages(task: Task): ChatMessage[] {
  return [{ role: "user", content: task.text }];
}

/** The conversation the judge is given for a case; `template` defaults to TINY_JUDGE_PROMPT. */
export function judgeMessages(
  c: { instruction: string; response: string },
  template?: string,
): ChatMessage[] {
  return [{ role: "user", content: buildJudgePrompt(c.instruction, c.response, template) }];
}

/**
 * Challenger prompts for measuring validity: `count` conversations cycling through the open
 * request and one request per family; `template` defaults to TINY_CHALLENGER_PROMPT.
 */
export function challengerEvalMessages(count: number, template?: string): ChatMessage[][] {
  const slots: ChallengerSlots[] = [OPEN_SLOTS, ...FAMILY_NAMES.map((f) => familySlots(f))];
  return Array.from({ length: count }, (_, i) => [
    { role: "user", content: renderChallengerPrompt(slots[i % slots.length], template) },
  ]);
}

/** Correct out of n, with the binomial standard error of the accuracy. */
export interface Accuracy {
  n: number;
  correct: number;
  accuracy: number;
  stderr: number;
}

function accuracy(correct: number, n: number): Accuracy {
  const p = n > 0 ? correct / n : 0;
  return { n, correct, accuracy: p, stderr: n > 0 ? Math.sqrt((p * (1 - p)) / n) : 0 };
}

/** Exact accuracy overall, per family, per level and per (family, level) cell. */
export interface SolverReport {
  overall: Accuracy;
  /** 1 where the answer to task i was right, else 0 (for paired comparisons across runs). */
  perTask: number[];
  byFamily: Record<string, Accuracy>;
  byLevel: Record<string, Accuracy>;
  byCell: Record<string, Accuracy>;
}

function tally(groups: Map<string, [number, number]>, key: string, ok: boolean) {
  const g = groups.get(key) ?? [0, 0];
  g[0] += ok ? 1 : 0;
  g[1] += 1;
  groups.set(key, g);
}

function toRecord(groups: Map<string, [number, number]>): Record<string, Accuracy> {
  const out: Record<string, Accuracy> = {};
  for (const [k, [c, n]] of groups) out[k] = accuracy(c, n);
  return out;
}

/** Scores the solver's answers (answers[i] answers tasks[i]) with the exact verifier. */
export function scoreSolver(tasks: readonly Task[], answers: readonly string[]): SolverReport {
  if (tasks.length !== answers.length) {
    throw new Error(`scoreSolver: ${tasks.length} tasks but ${answers.length} answers`);
  }
  const fam = new Map<string, [number, number]>();
  const lvl = new Map<string, [number, number]>();
  const cell = new Map<string, [number, number]>();
  let correct = 0;
  const perTask: number[] = [];
  tasks.forEach((t, i) => {
    const ok = verifyAnswer(t, answers[i]);
    perTask.push(ok ? 1 : 0);
    if (ok) correct++;
    tally(fam, t.family, ok);
    tally(lvl, String(t.level), ok);
    tally(cell, `${t.family}/${t.level}`, ok);
  });
  return {
    overall: accuracy(correct, tasks.length),
    perTask,
    byFamily: toRecord(fam),
    byLevel: toRecord(lvl),
    byCell: toRecord(cell),
  };
}

/** How well the judge's scores agree with the rubric's. */
export interface JudgeReport {
  n: number;
  /** Share of outputs whose parsed score equals the rubric's exactly. */
  agreement: number;
  /** Share within one point of the rubric's score. */
  within1: number;
  /** Mean |judge - rubric| (fallback scores included). */
  meanAbsError: number;
  /** Outputs with no readable score (scored with the fallback). */
  malformed: number;
  /** Outputs with a score outside 0..7 (scored with the fallback). */
  outOfRange: number;
  /** Share of outputs whose calculation gets criteria 1 and 2 (the instruction's) both right. */
  instructionCriteria: number;
  /** Per criterion, the share of outputs whose calculation gives the rubric's point. */
  criteria: number[];
  /** Outputs with no readable 7-point calculation. */
  noCalculation: number;
  /** The same agreement figures per stratum (level, "malformed", "beyond") where known. */
  byCategory: Record<string, { n: number; within1: number; instructionCriteria: number }>;
}

/** Compares judge outputs (outputs[i] judges cases[i]) with the rubric; `fallback` as in parsing. */
export function scoreJudge(
  cases: readonly { instruction: string; response: string; category?: string }[],
  outputs: readonly string[],
  fallback = 0,
): JudgeReport {
  if (cases.length !== outputs.length) {
    throw new Error(`scoreJudge: ${cases.length} cases but ${outputs.length} outputs`);
  }
  let exact = 0, near = 0, absErr = 0, malformed = 0, outOfRange = 0, noCalc = 0, instr = 0;
  const criteriaRight = new Array<number>(RUBRIC_MAX).fill(0);
  const cat: Record<string, { n: number; near: number; instr: number }> = {};
  cases.forEach((c, i) => {
    const grade = gradeWithRubric(c.instruction, c.response);
    const s = parseJudgeScore(outputs[i], { fallback });
    if (s.status === "malformed") malformed++;
    if (s.status === "out_of_range") outOfRange++;
    const d = Math.abs(s.score - grade.score);
    const isNear = s.status === "ok" && d <= 1;
    if (s.status === "ok" && d === 0) exact++;
    if (isNear) near++;
    absErr += d;
    const judged = parseJudgeCriteria(outputs[i]);
    if (!judged) noCalc++;
    judged?.forEach((v, k) => (criteriaRight[k] += v === grade.criteria[k] ? 1 : 0));
    const instrOk = judged !== null && judged[0] === grade.criteria[0] &&
      judged[1] === grade.criteria[1];
    if (instrOk) instr++;
    if (c.category !== undefined) {
      const e = cat[c.category] ??= { n: 0, near: 0, instr: 0 };
      e.n++;
      if (isNear) e.near++;
      if (instrOk) e.instr++;
    }
  });
  const n = cases.length;
  const share = (k: number, of: number) => of ? k / of : 0;
  return {
    n,
    agreement: share(exact, n),
    within1: share(near, n),
    meanAbsError: share(absErr, n),
    malformed,
    outOfRange,
    instructionCriteria: share(instr, n),
    criteria: criteriaRight.map((k) => share(k, n)),
    noCalculation: noCalc,
    byCategory: Object.fromEntries(
      Object.entries(cat).map((
        [k, e],
      ) => [k, { n: e.n, within1: share(e.near, e.n), instructionCriteria: share(e.instr, e.n) }]),
    ),
  };
}

/** What the challenger's outputs looked like. */
export interface ChallengerReport {
  n: number;
  /** Outputs that parse as a task. */
  wellFormed: number;
  wellFormedShare: number;
  /** Share of outputs that are well-formed and within levels 1..MAX_LEVEL. */
  inRangeShare: number;
  /** Distinct well-formed tasks over all outputs. */
  distinctShare: number;
  /** Well-formed outputs per family and per level ("6" = beyond the hardest). */
  byFamily: Record<string, number>;
  byLevel: Record<string, number>;
  /** Well-formed outputs that happen to be held-out tasks (the challenger cannot know them). */
  heldOut: number;
}

/** Scores challenger outputs for validity, range, diversity and the families/levels posed. */
export function scoreChallenger(outputs: readonly string[]): ChallengerReport {
  const byFamily: Record<string, number> = {};
  const byLevel: Record<string, number> = {};
  const distinct = new Set<string>();
  let wellFormed = 0, inRange = 0, heldOut = 0;
  for (const text of outputs) {
    const r = parseTask(text);
    if (!r.ok) continue;
    wellFormed++;
    if (r.task.level <= MAX_LEVEL) inRange++;
    distinct.add(r.task.text);
    if (splitOf(r.task.text) === "heldout") heldOut++;
    byFamily[r.task.family] = (byFamily[r.task.family] ?? 0) + 1;
    byLevel[r.task.level] = (byLevel[r.task.level] ?? 0) + 1;
  }
  const n = outputs.length;
  return {
    n,
    wellFormed,
    wellFormedShare: n ? wellFormed / n : 0,
    inRangeShare: n ? inRange / n : 0,
    distinctShare: n ? distinct.size / n : 0,
    byFamily,
    byLevel,
    heldOut,
  };
}

/** Win rate of a policy against the base with the verifier as judge (ties count half). */
export interface VerifierWinRate {
  n: number;
  wins: number;
  ties: number;
  losses: number;
  winRate: number;
  stderr: number;
}

/** Per task: policy right and base wrong = win, both right or both wrong = tie. */
export function verifierWinRate(
  tasks: readonly Task[],
  policyAnswers: readonly string[],
  baseAnswers: readonly string[],
): VerifierWinRate {
  if (tasks.length !== policyAnswers.length || tasks.length !== baseAnswers.length) {
    throw new Error(
      `verifierWinRate: ${tasks.length} tasks, ${policyAnswers.length} policy and ` +
        `${baseAnswers.length} base answers`,
    );
  }
  let wins = 0, ties = 0, losses = 0;
  const points: number[] = [];
  tasks.forEach((t, i) => {
    const p = verifyAnswer(t, policyAnswers[i]);
    const b = verifyAnswer(t, baseAnswers[i]);
    const s = p === b ? 0.5 : p ? 1 : 0;
    if (s === 1) wins++;
    else if (s === 0) losses++;
    else ties++;
    points.push(s);
  });
  const n = tasks.length;
  const mean = n ? (wins + ties / 2) / n : 0;
  const variance = n > 1 ? points.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1) : 0;
  return { n, wins, ties, losses, winRate: mean, stderr: n ? Math.sqrt(variance / n) : 0 };
}

/** A plain-text table of a solver report: accuracy by level, then by family. */
export function formatSolverReport(r: SolverReport): string {
  const pct = (a: Accuracy) =>
    `${(100 * a.accuracy).toFixed(1).padStart(5)}% ± ${
      (100 * a.stderr).toFixed(1)
    } (${a.correct}/${a.n})`;
  const lines = [`overall  ${pct(r.overall)}`];
  for (const k of Object.keys(r.byLevel).sort()) lines.push(`level ${k}  ${pct(r.byLevel[k])}`);
  for (const f of FAMILY_NAMES) {
    if (r.byFamily[f]) lines.push(`${f.padEnd(8)} ${pct(r.byFamily[f])}`);
  }
  return lines.join("\n");
}
