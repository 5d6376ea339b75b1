/**
 * The tiny world's judge: a 7-criterion additive rubric mirroring the paper's quality
 * self-reward (criteria 1-2 grade the instruction, 3-7 the response; +1 each, total 0..7),
 * the judge prompt that shows a task and a candidate answer, the compact reasoning the base
 * model is trained to write, and the parser that reads a score back with a defined fallback.
 */

import { type ParsedScore, parseScoreTag } from "../rewards/score_tag.ts";
import {
  answerHasFormat,
  answerIsCanonical,
  familyByName,
  MAX_LEVEL,
  normalizeAnswer,
  parseTask,
} from "./tasks.ts";

/** Names of the seven criteria, in the order they are written and summed. */
export const RUBRIC_CRITERIA = [
  "task well-formed", // 1: the instruction parses as a task of some family
  "task in range", // 2: clear and specific: within the difficulty levels 1..MAX_LEVEL
  "reply readable", // 3: non-empty, printable text
  "reply on format", // 4: addresses the task: its first line has the answer's shape
  "reply correct", // 5: that first line is the right answer, up to case/zeros/commas
  "reply concise", // 6: nothing but the answer (one line, no extra text)
  "reply well-formed", // 7: exactly canonical, no stray spaces, zeros or capitals
] as const;

/** Highest score the rubric gives. */
export const RUBRIC_MAX = RUBRIC_CRITERIA.length;

/** The rubric's verdict on one (instruction, response) pair. */
export interface RubricGrade {
  /** One boolean per entry of RUBRIC_CRITERIA. */
  criteria: boolean[];
  /** Number of criteria met, 0..RUBRIC_MAX. */
  score: number;
  /** The right answer when the instruction is a well-formed task, else null. */
  expected: string | null;
}

const PRINTABLE = /^[\x20-\x7e\n]+$/;

/** Grades a response to an instruction with the 7-criterion rubric; pure and exact. */
export function gradeWithRubric(instruction: string, response: string): RubricGrade {
  const parsed = parseTask(instruction);
  const trimmed = response.trim();
  const readable = trimmed.length > 0 && PRINTABLE.test(trimmed);
  let criteria: boolean[];
  let expected: string | null = null;
  if (!parsed.ok) {
    // Nothing to address: only readability can be judged.
    criteria = [false, false, readable, false, false, false, false];
  } else {
    const task = parsed.task;
    expected = task.answer;
    const kind = familyByName(task.family).answerKind;
    const firstLine = trimmed.split("\n")[0].trim();
    const onFormat = readable && answerHasFormat(kind, firstLine);
    criteria = [
      true,
      task.level <= MAX_LEVEL,
      readable,
      onFormat,
      onFormat && normalizeAnswer(kind, firstLine) === task.answer,
      onFormat && trimmed === firstLine,
      answerIsCanonical(kind, response),
    ];
  }
  return { criteria, score: criteria.filter((c) => c).length, expected };
}

/**
 * Default judge prompt, the paper's judge in miniature. `{instruction}` and `{response}` are
 * the slots; the rest is fixed so a character model can learn it.
 */
export const TINY_JUDGE_PROMPT = "Score 0-7, +1 each: task ok, in range; reply readable, " +
  "on format, correct, concise, tidy. Sum the 7 points, end: <score>N</score>\n" +
  "task: {instruction}\nreply: {response}";

/**
 * Fills a judge prompt template's `{instruction}` and `{response}` slots in one pass, so text
 * inside the slots is never substituted again. Throws if the template lacks either slot.
 */
export function buildJudgePrompt(
  instruction: string,
  response: string,
  template: string = TINY_JUDGE_PROMPT,
): string {
  for (const slot of ["{instruction}", "{response}"]) {
    if (!template.includes(slot)) {
      throw new Error(`judge prompt template: missing the ${slot} slot`);
    }
  }
  return template.replace(
    /\{(instruction|response)\}/g,
    (_, name: string) => name === "instruction" ? instruction : response,
  );
}

/**
 * The judge's answer the base model is trained on, in the paper's structure: the calculation
 * (each criterion's point, in order, and their sum), then the total between score tags, e.g.
 * "1+1+1+1+0+1+1=6\n<score>6</score>". It does not solve the task first: criteria 1-4, 6 and 7
 * are read off the task and the reply; only "correct" needs checking the answer.
 */
export function judgeCompletion(grade: RubricGrade): string {
  const sum = grade.criteria.map((c) => (c ? "1" : "0")).join("+");
  return `${sum}=${grade.score}\n<score>${grade.score}</score>`;
}

/**
 * The criteria a judgement's calculation line gives ("1+0+...=N", the last such line), or null
 * when it has none with RUBRIC_MAX points.
 */
export function parseJudgeCriteria(text: string): boolean[] | null {
  const lines = [...text.matchAll(/([01](?:\+[01])*)=\d+/g)];
  for (let k = lines.length - 1; k >= 0; k--) {
    const points = lines[k][1].split("+");
    if (points.length === RUBRIC_MAX) return points.map((p) => p === "1");
  }
  return null;
}

/**
 * Reads the score from a judge's output: the last score tag with an integer 0..max (default the
 * rubric's 7), case and whitespace tolerant (lib/rewards/score_tag.ts). No tag or a non-integer
 * inside is "malformed"; an integer outside 0..max is "out_of_range"; both return `fallback`
 * (default 0) so callers can count them.
 */
export function parseJudgeScore(
  text: string,
  options: { fallback?: number; max?: number } = {},
): ParsedScore {
  return parseScoreTag(text, { fallback: options.fallback, max: options.max ?? RUBRIC_MAX });
}
