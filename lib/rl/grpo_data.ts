/**
 * Queries for the GRPO data baseline: an Alpaca-style instruction file (the paper's setting), or
 * for the tiny world a fixed generated dataset of training-split tasks (disjoint from the
 * held-out evaluation by the tiny world's hash split).
 *
 * @module
 */
import { loadInstructions } from "../data/instructions.ts";
import { Rng } from "../tinyworld/prng.ts";
import { generateTaskIn } from "../tinyworld/split.ts";
import { FAMILY_NAMES, MAX_LEVEL } from "../tinyworld/tasks.ts";

/**
 * `size` tiny-world training tasks, cycling through families and levels minLevel..maxLevel,
 * each drawn from its own seeded stream: the same arguments give the same list.
 */
export function tinyTaskQueries(
  size: number,
  seed: number,
  minLevel = 1,
  maxLevel = MAX_LEVEL,
): string[] {
  if (!Number.isInteger(size) || size < 1) {
    throw new Error(`data.size must be a positive integer, got ${size}`);
  }
  if (
    !(Number.isInteger(minLevel) && Number.isInteger(maxLevel) && 1 <= minLevel &&
      minLevel <= maxLevel && maxLevel <= MAX_LEVEL)
  ) {
    throw new Error(`data levels must satisfy 1 <= minLevel <= maxLevel <= ${MAX_LEVEL}`);
  }
  const levels = maxLevel - minLevel + 1;
  return Array.from({ length: size }, (_, i) => {
    const family = FAMILY_NAMES[i % FAMILY_NAMES.length];
    const level = minLevel + (Math.floor(i / FAMILY_NAMES.length) % levels);
    return generateTaskIn("train", new Rng(seed, i), family, level).text;
  });
}

/** The user turns of an Alpaca-style JSON/JSONL file (instruction plus input). */
export async function instructionQueries(path: string): Promise<string[]> {
  return (await loadInstructions(path)).map((it) => it.prompt);
}
