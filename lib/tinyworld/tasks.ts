/**
 * The tiny world's task families: six instruction types over short strings and numbers.
 *
 * Every family has a canonical text form ("reverse: abc"), a difficulty knob (levels 1..5, plus
 * level 6 = "beyond the hardest level", still well-formed and verifiable), a seeded generator, a
 * strict parser and an exact solver. `parseTask` is the single gate that decides whether a text
 * is a well-formed task; invalid or unanswerable text (unknown keyword, wrong arity, leading zeros,
 * a multi-letter "letter", sizes past the parse limits) is rejected with a reason.
 */

import { Rng } from "./prng.ts";

/** Hardest level a task can have while still being "in range". */
export const MAX_LEVEL = 5;
/** Level given to well-formed tasks larger than level MAX_LEVEL allows. */
export const BEYOND_LEVEL = MAX_LEVEL + 1;

/** Names of the task families, in registry order. */
export type FamilyName = "reverse" | "sort" | "add" | "count" | "max" | "repeat";

/** Shape of a family's answer; decides the lenient and canonical answer formats. */
export type AnswerKind = "letters" | "number" | "numbers";

/** A parsed, well-formed task. */
export interface Task {
  family: FamilyName;
  /** Canonical text, exactly what the solver sees as the user turn. */
  text: string;
  /** 1..MAX_LEVEL, or BEYOND_LEVEL when larger than the hardest level. */
  level: number;
  /** The one exact answer. */
  answer: string;
}

/** Result of `parseTask`. */
export type ParseResult = { ok: true; task: Task } | { ok: false; reason: string };

/** One task family: generator, parser and solver. */
export interface TaskFamily {
  name: FamilyName;
  /** The challenger's fill-in template for this family, with `{placeholders}`. */
  template: string;
  /** A short worked example "input -> output", used in prompts. */
  example: string;
  answerKind: AnswerKind;
  /** Canonical text of a fresh task of exactly `level` (1..BEYOND_LEVEL). */
  generate(rng: Rng, level: number): string;
  /** Parses text whose keyword already matched this family. */
  parse(text: string): ParseResult;
}

const LETTERS = "abcdefghijklmnopqrstuvwxyz";
const NUM = "(0|[1-9][0-9]*)";

function randomWord(rng: Rng, length: number): string {
  let s = "";
  for (let i = 0; i < length; i++) s += LETTERS[rng.int(0, 25)];
  return s;
}

function fail(reason: string): ParseResult {
  return { ok: false, reason };
}

/** Smallest level whose limits hold every size in `sizes`; BEYOND_LEVEL if none does. */
function levelOf(sizes: readonly number[], limits: readonly (readonly number[])[]): number {
  for (let l = 0; l < MAX_LEVEL; l++) {
    if (sizes.every((s, i) => s <= limits[l][i])) return l + 1;
  }
  return BEYOND_LEVEL;
}

/** Draws candidates until one has exactly the wanted level; the specs make this quick. */
function generateAtLevel(
  family: string,
  level: number,
  draw: () => string,
  parse: (t: string) => ParseResult,
): string {
  if (!Number.isInteger(level) || level < 1 || level > BEYOND_LEVEL) {
    throw new Error(
      `${family}.generate: level must be an integer in 1..${BEYOND_LEVEL}, got ${level}`,
    );
  }
  for (let tries = 0; tries < 10000; tries++) {
    const text = draw();
    const r = parse(text);
    if (!r.ok) {
      throw new Error(`${family}.generate produced an invalid task "${text}": ${r.reason}`);
    }
    if (r.task.level === level) return text;
  }
  throw new Error(`${family}.generate: no task of level ${level} after 10000 draws`);
}

function parseNumberList(body: string, what: string): number[] | string {
  if (!new RegExp(`^${NUM}( ${NUM})*$`).test(body)) {
    return `${what}: expected numbers without leading zeros separated by single spaces`;
  }
  return body.split(" ").map(Number);
}

/** Per-level limits [maxLength]; the last row is the parse limit for "beyond" tasks. */
const REVERSE_LIMITS = [[3], [5], [7], [9], [12], [16]];
const reverse: TaskFamily = {
  name: "reverse",
  template: "reverse: {word}",
  example: "reverse: abc -> cba",
  answerKind: "letters",
  generate(rng, level) {
    const lo = level === 1 ? 2 : REVERSE_LIMITS[level - 2][0] + 1;
    const hi = REVERSE_LIMITS[level - 1][0];
    return generateAtLevel(
      "reverse",
      level,
      () => `reverse: ${randomWord(rng, rng.int(lo, hi))}`,
      this.parse,
    );
  },
  parse(text) {
    const m = /^reverse: ([a-z]+)$/.exec(text);
    if (!m) return fail("reverse: expected 'reverse: <lowercase word>'");
    const word = m[1];
    if (word.length > REVERSE_LIMITS[MAX_LEVEL][0]) {
      return fail(`reverse: word longer than ${REVERSE_LIMITS[MAX_LEVEL][0]} letters`);
    }
    return {
      ok: true,
      task: {
        family: "reverse",
        text,
        level: levelOf([word.length], REVERSE_LIMITS),
        answer: [...word].reverse().join(""),
      },
    };
  },
};

/** Per-level limits [maxCount, maxValue]. */
const SORT_LIMITS = [[3, 9], [4, 99], [5, 99], [6, 999], [8, 999], [10, 9999]];
const sort: TaskFamily = {
  name: "sort",
  template: "sort: {numbers}",
  example: "sort: 3 1 2 -> 1 2 3",
  answerKind: "numbers",
  generate(rng, level) {
    const [maxCount, maxValue] = SORT_LIMITS[level - 1];
    return generateAtLevel("sort", level, () => {
      const n = rng.int(2, maxCount);
      return "sort: " + Array.from({ length: n }, () => rng.int(0, maxValue)).join(" ");
    }, this.parse);
  },
  parse(text) {
    const m = /^sort: (.*)$/.exec(text);
    if (!m) return fail("sort: expected 'sort: <numbers>'");
    const nums = parseNumberList(m[1], "sort");
    if (typeof nums === "string") return fail(nums);
    const [capCount, capValue] = SORT_LIMITS[MAX_LEVEL];
    if (nums.length < 2) return fail("sort: needs at least 2 numbers");
    if (nums.length > capCount) return fail(`sort: more than ${capCount} numbers`);
    const top = Math.max(...nums);
    if (top > capValue) return fail(`sort: number larger than ${capValue}`);
    return {
      ok: true,
      task: {
        family: "sort",
        text,
        level: levelOf([nums.length, top], SORT_LIMITS),
        answer: [...nums].sort((a, b) => a - b).join(" "),
      },
    };
  },
};

/** Per-level limits [maxDigits of either operand]. */
const ADD_LIMITS = [[1], [2], [3], [4], [5], [7]];
const add: TaskFamily = {
  name: "add",
  template: "add: {a} {b}",
  example: "add: 2 3 -> 5",
  answerKind: "number",
  generate(rng, level) {
    const digits = ADD_LIMITS[level - 1][0];
    const top = 10 ** digits - 1;
    return generateAtLevel(
      "add",
      level,
      () => `add: ${rng.int(0, top)} ${rng.int(0, top)}`,
      this.parse,
    );
  },
  parse(text) {
    const m = new RegExp(`^add: ${NUM} ${NUM}$`).exec(text);
    if (!m) return fail("add: expected 'add: <a> <b>' with two numbers without leading zeros");
    const cap = ADD_LIMITS[MAX_LEVEL][0];
    if (m[1].length > cap || m[2].length > cap) {
      return fail(`add: operand longer than ${cap} digits`);
    }
    const digits = Math.max(m[1].length, m[2].length);
    return {
      ok: true,
      task: {
        family: "add",
        text,
        level: levelOf([digits], ADD_LIMITS),
        answer: String(Number(m[1]) + Number(m[2])),
      },
    };
  },
};

/** Per-level limits [maxLength of the text searched]. */
const COUNT_LIMITS = [[4], [6], [8], [10], [14], [18]];
const count: TaskFamily = {
  name: "count",
  template: "count {letter}: {text}",
  example: "count a: banana -> 3",
  answerKind: "number",
  generate(rng, level) {
    const lo = level === 1 ? 3 : COUNT_LIMITS[level - 2][0] + 1;
    const hi = COUNT_LIMITS[level - 1][0];
    return generateAtLevel("count", level, () => {
      const letter = LETTERS[rng.int(0, 25)];
      const n = rng.int(lo, hi);
      // Over-represent the counted letter so answers spread beyond 0 and 1.
      let s = "";
      for (let i = 0; i < n; i++) s += rng.next() < 0.3 ? letter : LETTERS[rng.int(0, 25)];
      return `count ${letter}: ${s}`;
    }, this.parse);
  },
  parse(text) {
    const m = /^count ([a-z]): ([a-z]+)$/.exec(text);
    if (!m) return fail("count: expected 'count <one letter>: <lowercase text>'");
    const cap = COUNT_LIMITS[MAX_LEVEL][0];
    if (m[2].length > cap) return fail(`count: text longer than ${cap} letters`);
    let n = 0;
    for (const c of m[2]) if (c === m[1]) n++;
    return {
      ok: true,
      task: {
        family: "count",
        text,
        level: levelOf([m[2].length], COUNT_LIMITS),
        answer: String(n),
      },
    };
  },
};

/** Per-level limits [maxCount, maxValue]. */
const MAX_LIMITS = [[3, 9], [4, 99], [5, 99], [6, 999], [8, 9999], [10, 99999]];
const max: TaskFamily = {
  name: "max",
  template: "max: {numbers}",
  example: "max: 3 9 4 -> 9",
  answerKind: "number",
  generate(rng, level) {
    const [maxCount, maxValue] = MAX_LIMITS[level - 1];
    return generateAtLevel("max", level, () => {
      const n = rng.int(2, maxCount);
      return "max: " + Array.from({ length: n }, () => rng.int(0, maxValue)).join(" ");
    }, this.parse);
  },
  parse(text) {
    const m = /^max: (.*)$/.exec(text);
    if (!m) return fail("max: expected 'max: <numbers>'");
    const nums = parseNumberList(m[1], "max");
    if (typeof nums === "string") return fail(nums);
    const [capCount, capValue] = MAX_LIMITS[MAX_LEVEL];
    if (nums.length < 2) return fail("max: needs at least 2 numbers");
    if (nums.length > capCount) return fail(`max: more than ${capCount} numbers`);
    const top = Math.max(...nums);
    if (top > capValue) return fail(`max: number larger than ${capValue}`);
    return {
      ok: true,
      task: {
        family: "max",
        text,
        level: levelOf([nums.length, top], MAX_LIMITS),
        answer: String(top),
      },
    };
  },
};

/** Per-level limits [maxTimes, maxWordLength]. */
const REPEAT_LIMITS = [[2, 2], [3, 2], [3, 3], [4, 3], [5, 4], [9, 6]];
const repeat: TaskFamily = {
  name: "repeat",
  template: "repeat {times}: {word}",
  example: "repeat 3: ab -> ababab",
  answerKind: "letters",
  generate(rng, level) {
    const [maxTimes, maxLen] = REPEAT_LIMITS[level - 1];
    return generateAtLevel(
      "repeat",
      level,
      () => `repeat ${rng.int(2, maxTimes)}: ${randomWord(rng, rng.int(1, maxLen))}`,
      this.parse,
    );
  },
  parse(text) {
    const m = /^repeat ([1-9]): ([a-z]+)$/.exec(text);
    if (!m) return fail("repeat: expected 'repeat <1-9>: <lowercase word>'");
    const cap = REPEAT_LIMITS[MAX_LEVEL][1];
    if (m[2].length > cap) return fail(`repeat: word longer than ${cap} letters`);
    const times = Number(m[1]);
    return {
      ok: true,
      task: {
        family: "repeat",
        text,
        level: levelOf([times, m[2].length], REPEAT_LIMITS),
        answer: m[2].repeat(times),
      },
    };
  },
};

/** The registry: every family, in a fixed order (generators index into it). */
export const FAMILIES: readonly TaskFamily[] = [reverse, sort, add, count, max, repeat];

/** Family names in registry order. */
export const FAMILY_NAMES: readonly FamilyName[] = FAMILIES.map((f) => f.name);

/** The family called `name`; throws naming the known ones otherwise. */
export function familyByName(name: string): TaskFamily {
  const f = FAMILIES.find((x) => x.name === name);
  if (!f) throw new Error(`unknown task family "${name}" (known: ${FAMILY_NAMES.join(", ")})`);
  return f;
}

/**
 * Decides whether `text` is a well-formed task. Surrounding whitespace is ignored (generation
 * may end with a newline); everything inside must be canonical.
 */
export function parseTask(text: string): ParseResult {
  const t = text.trim();
  if (t.length === 0) return fail("empty text");
  const keyword = /^[a-z]+/.exec(t)?.[0];
  const family = FAMILIES.find((f) => f.name === keyword);
  if (!family) return fail(`no task family starts "${t.slice(0, 12)}"`);
  return family.parse(t);
}

/** Generates the canonical text of one task of `family` at `level` (1..BEYOND_LEVEL). */
export function generateTask(rng: Rng, family: FamilyName, level: number): Task {
  const text = familyByName(family).generate(rng, level);
  const r = parseTask(text);
  if (!r.ok) throw new Error(`generated task "${text}" does not parse: ${r.reason}`);
  return r.task;
}

/** Exact verifier: the answer, less surrounding whitespace, equals the one right answer. */
export function verifyAnswer(task: Task, answer: string): boolean {
  return answer.trim() === task.answer;
}

const LENIENT: Record<AnswerKind, RegExp> = {
  letters: /^[A-Za-z]+$/,
  number: /^[+-]?[0-9]+$/,
  numbers: /^[0-9]+(?:[ ,]+[0-9]+)*$/,
};
const CANONICAL: Record<AnswerKind, RegExp> = {
  letters: /^[a-z]+$/,
  number: /^(0|[1-9][0-9]*)$/,
  numbers: /^(0|[1-9][0-9]*)( (0|[1-9][0-9]*))*$/,
};

/** Whether `text` has the right shape for the family's answer, loosely (case, zeros, commas). */
export function answerHasFormat(kind: AnswerKind, text: string): boolean {
  return LENIENT[kind].test(text);
}

/** Whether `text` is an answer in exactly the canonical form (no stray spaces, zeros or case). */
export function answerIsCanonical(kind: AnswerKind, text: string): boolean {
  return CANONICAL[kind].test(text);
}

/** Canonical form of a loosely formatted answer, or null if it has not the family's format. */
export function normalizeAnswer(kind: AnswerKind, text: string): string | null {
  if (!LENIENT[kind].test(text)) return null;
  if (kind === "letters") return text.toLowerCase();
  if (kind === "number") return String(BigInt(text));
  return text.split(/[ ,]+/).map((x) => String(BigInt(x))).join(" ");
}
