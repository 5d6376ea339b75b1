/**
 * The median of timing samples, as the benchmarks report them.
 *
 * @module
 */

/** The upper median (the middle element after sorting; for an even count, the upper one). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error("median: no values");
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
}
