/**
 * "Did you mean" for misspelt keys: Levenshtein distance over the valid keys at one level.
 *
 * @module
 */

/** Edit distance (insertions, deletions, substitutions) between `a` and `b`. */
export function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

/**
 * The valid key closest to `key` (ties: first in sorted order), or null when there are none or
 * the closest is more than `maxDistance` edits away.
 */
export function nearestKey(
  key: string,
  valid: readonly string[],
  maxDistance = Infinity,
): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const v of [...valid].sort()) {
    const d = levenshtein(key.toLowerCase(), v.toLowerCase());
    if (d < bestD) [best, bestD] = [v, d];
  }
  return bestD <= maxDistance ? best : null;
}
