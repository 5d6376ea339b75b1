/**
 * Reading a judge's total from its text: the last `<score>N</score>` counts. Tags are read
 * whatever their case and inner whitespace (`<Score>5</Score>`, `< score >5</ score>`), since
 * judges follow the paper's tags loosely; N must be a whole number in 0..max. A missing tag or a
 * non-integer is "malformed", an integer outside the range "out_of_range"; both score `fallback`,
 * so callers count them instead of silently shifting rewards.
 *
 * @module
 */

/** How a judge output was read. */
export type ScoreStatus = "ok" | "malformed" | "out_of_range";

/** A parsed judge score; `score` is the fallback unless `status` is "ok". */
export interface ParsedScore {
  score: number;
  status: ScoreStatus;
}

/** Range and fallback of {@link parseScoreTag}. */
export interface ScoreParseOptions {
  /** Highest valid score (default 7: the paper's seven criteria). */
  max?: number;
  /** Score given to malformed and out-of-range outputs (default 0). */
  fallback?: number;
}

const SCORE_TAG = /<\s*score\s*>([\s\S]*?)<\s*\/\s*score\s*>/gi;

/** Reads the judge's total from its output; see the module doc for the rules. */
export function parseScoreTag(text: string, opts: ScoreParseOptions = {}): ParsedScore {
  const max = opts.max ?? 7;
  const fallback = opts.fallback ?? 0;
  const tags = [...text.matchAll(SCORE_TAG)];
  if (tags.length === 0) return { score: fallback, status: "malformed" };
  const inner = tags[tags.length - 1][1].trim();
  if (!/^[+-]?\d+$/.test(inner)) return { score: fallback, status: "malformed" };
  const n = Number(inner);
  if (n < 0 || n > max) return { score: fallback, status: "out_of_range" };
  return { score: n, status: "ok" };
}
