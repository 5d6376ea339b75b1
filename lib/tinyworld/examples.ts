/**
 * The three roles the tiny base model learns, as chat examples mirroring the real run:
 * solver (task -> answer), challenger (fixed prompt -> one task) and judge (prompt showing a
 * task and a candidate answer -> rubric reasoning ending in a score between tags).
 * Also the candidate answers the judge is shown (right, wrong, untidy, extra text, garbled,
 * empty) and malformed tasks, drawn so every rubric criterion is exercised both ways.
 */

import type { ChatExample } from "../train/data.ts";
import { familySlots, OPEN_SLOTS, renderChallengerPrompt } from "./challenger.ts";
import { Rng } from "./prng.ts";
import { buildJudgePrompt, gradeWithRubric, judgeCompletion } from "./rubric.ts";
import { generateTaskIn, Split } from "./split.ts";
import { BEYOND_LEVEL, FAMILY_NAMES, familyByName, FamilyName, parseTask, Task } from "./tasks.ts";

/** Solver example: the task as the user turn, its exact answer as the assistant turn. */
export function solverExample(task: Task): ChatExample {
  return {
    messages: [{ role: "user", content: task.text }, { role: "assistant", content: task.answer }],
  };
}

/** Challenger example: the filled challenger prompt as the user turn, one task as the answer. */
export function challengerExample(
  task: Task,
  open: boolean,
  promptTemplate?: string,
): ChatExample {
  const slots = open ? OPEN_SLOTS : familySlots(task.family);
  return {
    messages: [
      { role: "user", content: renderChallengerPrompt(slots, promptTemplate) },
      { role: "assistant", content: task.text },
    ],
  };
}

/** Judge example: the judge prompt over (instruction, response), the rubric's reasoning as answer. */
export function judgeExample(
  instruction: string,
  response: string,
  promptTemplate?: string,
): ChatExample {
  return {
    messages: [
      { role: "user", content: buildJudgePrompt(instruction, response, promptTemplate) },
      { role: "assistant", content: judgeCompletion(gradeWithRubric(instruction, response)) },
    ],
  };
}

/** Kinds of candidate answers shown to the judge. */
export const CANDIDATE_KINDS = ["right", "wrong", "untidy", "extra", "garbled", "empty"] as const;
/** One kind of candidate answer. */
export type CandidateKind = typeof CANDIDATE_KINDS[number];
/** Default mix of candidate kinds (same order as CANDIDATE_KINDS). */
export const DEFAULT_CANDIDATE_WEIGHTS = [0.3, 0.25, 0.1, 0.1, 0.15, 0.1];

const LETTERS = "abcdefghijklmnopqrstuvwxyz";
const PRINTABLE = Array.from({ length: 95 }, (_, i) => String.fromCharCode(0x20 + i)).join("");

function randomString(rng: Rng, alphabet: string, lo: number, hi: number): string {
  let s = "";
  const n = rng.int(lo, hi);
  for (let i = 0; i < n; i++) s += alphabet[rng.int(0, alphabet.length - 1)];
  return s;
}

/** A wrong answer in the family's own format (so only correctness fails). */
function wrongAnswer(rng: Rng, task: Task): string {
  const kind = familyByName(task.family).answerKind;
  for (let tries = 0; tries < 100; tries++) {
    let w: string;
    if (kind === "letters") {
      const chars = [...task.answer];
      const op = rng.int(0, 2);
      const i = rng.int(0, chars.length - 1);
      if (op === 0) chars[i] = LETTERS[rng.int(0, 25)];
      else if (op === 1 && chars.length > 1) chars.splice(i, 1);
      else chars.splice(i, 0, LETTERS[rng.int(0, 25)]);
      w = chars.join("");
    } else if (kind === "number") {
      const delta = rng.pick([1, 1, 2, 3, 10]) * (rng.next() < 0.5 ? -1 : 1);
      w = String(Math.max(0, Number(task.answer) + delta));
    } else {
      const xs = task.answer.split(" ");
      const i = rng.int(0, xs.length - 1);
      const j = rng.int(0, xs.length - 1);
      if (rng.next() < 0.5) [xs[i], xs[j]] = [xs[j], xs[i]];
      else xs[i] = String(Math.max(0, Number(xs[i]) + rng.pick([-1, 1, 5])));
      w = xs.join(" ");
    }
    if (w !== task.answer) return w;
  }
  throw new Error(`no wrong answer found for "${task.text}"`);
}

/** The right answer in a loose, non-canonical form (case, zeros, spacing, commas). */
function untidyAnswer(rng: Rng, task: Task): string {
  const kind = familyByName(task.family).answerKind;
  const op = rng.int(0, 2);
  if (op === 0) return ` ${task.answer}`;
  if (kind === "letters") return op === 1 ? task.answer.toUpperCase() : `${task.answer} `;
  if (kind === "number") return op === 1 ? `0${task.answer}` : `${task.answer} `;
  return op === 1 ? task.answer.replaceAll(" ", ", ") : task.answer.replaceAll(" ", "  ");
}

/** A candidate answer of the given kind to `task`. */
export function candidateAnswer(rng: Rng, task: Task, kind: CandidateKind): string {
  switch (kind) {
    case "right":
      return task.answer;
    case "wrong":
      return wrongAnswer(rng, task);
    case "untidy":
      return untidyAnswer(rng, task);
    case "extra": {
      const base = rng.next() < 0.7 ? task.answer : wrongAnswer(rng, task);
      return `${base}\n${randomString(rng, LETTERS + " ", 2, 8)}`;
    }
    case "garbled":
      return randomString(rng, PRINTABLE, 1, 8);
    case "empty":
      return rng.pick(["", " ", "\n"]);
  }
}

/**
 * A text that is not a well-formed task: a corrupted task (missing colon, capitals, leading
 * zero, missing or extra operand, typo in the keyword, doubled space) or random characters.
 */
export function malformedTask(rng: Rng, task: Task): string {
  for (let tries = 0; tries < 100; tries++) {
    const t = task.text;
    const colon = t.indexOf(":");
    let bad: string;
    switch (rng.int(0, 6)) {
      case 0:
        bad = t.slice(0, colon) + t.slice(colon + 1);
        break;
      case 1:
        bad = t.toUpperCase();
        break;
      case 2:
        bad = t.replace(/ (\d)/, " 0$1").replace(/: ([a-z])/, ": $1 $1");
        break;
      case 3:
        bad = t.replace(/ \S+$/, "");
        break;
      case 4:
        bad = t.slice(0, 1) + t.slice(2);
        break;
      case 5:
        bad = t.replace(": ", ":  ");
        break;
      default:
        bad = randomString(rng, LETTERS + " :0123456789", 3, 16);
    }
    if (!parseTask(bad).ok) return bad;
  }
  throw new Error(`no malformed variant found for "${task.text}"`);
}

/** What a judge example is built from: an instruction, a response, and how they were drawn. */
export interface JudgeCase {
  instruction: string;
  response: string;
  taskKind: "in-range" | "beyond" | "malformed";
  candidate: CandidateKind;
}

/** Mix of instruction kinds for judge cases. */
export interface JudgeCaseOptions {
  /** Levels of in-range tasks are drawn uniformly from 1..maxLevel. */
  maxLevel: number;
  /** Share of instructions that are malformed (default 0.12). */
  malformedShare?: number;
  /** Share of well-formed instructions past the hardest level (default 0.05). */
  beyondShare?: number;
  /** Weights over CANDIDATE_KINDS. */
  candidateWeights?: readonly number[];
  /** Restrict tasks to these families (default: all). */
  families?: readonly FamilyName[];
  /** Draw exactly this kind of instruction (and, for "in-range", this level) instead. */
  only?: { taskKind: JudgeCase["taskKind"]; level?: number };
}

/** Draws one judge case from `split` (train for training data, heldout for evaluation). */
export function drawJudgeCase(rng: Rng, split: Split, options: JudgeCaseOptions): JudgeCase {
  const families = options.families ?? FAMILY_NAMES;
  const malformedShare = options.malformedShare ?? 0.12;
  const beyondShare = options.beyondShare ?? 0.05;
  const r = rng.next();
  const taskKind = options.only?.taskKind ??
    (r < malformedShare ? "malformed" : r < malformedShare + beyondShare ? "beyond" : "in-range");
  const level = taskKind === "beyond"
    ? BEYOND_LEVEL
    : options.only?.level ?? rng.int(1, options.maxLevel);
  const task = generateTaskIn(split, rng, rng.pick(families), level);
  const candidate =
    CANDIDATE_KINDS[rng.weighted(options.candidateWeights ?? DEFAULT_CANDIDATE_WEIGHTS)];
  const response = candidateAnswer(rng, task, candidate);
  const instruction = taskKind === "malformed" ? malformedTask(rng, task) : task.text;
  return { instruction, response, taskKind, candidate };
}
