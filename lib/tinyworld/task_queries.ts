/**
 * The tiny world's query source for the GRPO data baseline: a fixed generated dataset of
 * training-split tasks (disjoint from the held-out evaluation by the hash split).
 *
 * @module
 */
import type { QuerySourceFactory } from "../rl/query_source.ts";
import { Rng } from "./prng.ts";
import { generateTaskIn } from "./split.ts";
import { FAMILY_NAMES, MAX_LEVEL } from "./tasks.ts";

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

/** The `tiny` query source: `data.size` tasks of levels `data.minLevel..data.maxLevel`. */
export const tinyQuerySource: QuerySourceFactory = (data, seed) =>
  Promise.resolve(tinyTaskQueries(data.size, seed, data.minLevel, data.maxLevel));
