/**
 * Choosing which sampled transcripts a report shows: a few iterations spread over the run (first,
 * middle, last, ...) and a few samples of each role from each, so the report stays small however
 * long samples.jsonl is.
 *
 * @module
 */
import type { Sample } from "./load.ts";

/** Samples of one iteration, in file order. */
export interface TranscriptGroup {
  iter: number | undefined;
  samples: Sample[];
}

/** Picks up to `maxIters` evenly spread iterations and up to `perRole` samples per role of each. */
export function selectTranscripts(
  samples: readonly Sample[],
  maxIters = 3,
  perRole = 4,
): TranscriptGroup[] {
  const byIter = new Map<number | undefined, Sample[]>();
  for (const s of samples) {
    let list = byIter.get(s.iter);
    if (!list) byIter.set(s.iter, list = []);
    list.push(s);
  }
  const iters = [...byIter.keys()].sort((a, b) => (a ?? -Infinity) - (b ?? -Infinity));
  const chosen = new Set<number>();
  if (iters.length <= maxIters) iters.forEach((_, i) => chosen.add(i));
  else {
    for (let k = 0; k < maxIters; k++) {
      chosen.add(Math.round((k * (iters.length - 1)) / Math.max(1, maxIters - 1)));
    }
  }
  return [...chosen].sort((a, b) => a - b).map((i) => {
    const taken = new Map<string, number>();
    const picked = byIter.get(iters[i])!.filter((s) => {
      const role = s.role ?? "";
      const n = taken.get(role) ?? 0;
      taken.set(role, n + 1);
      return n < perRole;
    });
    return { iter: iters[i], samples: picked };
  });
}
