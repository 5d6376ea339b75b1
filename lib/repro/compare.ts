/**
 * File-by-file comparison of the deterministic outputs of two bundles, and its table.
 *
 * @module
 */
import type { BundleIndex } from "../bundle/format.ts";

/** How one deterministic file of the original fared in the reproduction. */
export type Verdict = "match" | "DIFFERS" | "MISSING" | "EXTRA";

/** One row of the comparison. */
export interface FileComparison {
  path: string;
  /** sha256 in the original (null: not there). */
  original: string | null;
  /** sha256 in the reproduction (null: not there). */
  reproduced: string | null;
  verdict: Verdict;
}

/**
 * Compares every file the original marks deterministic with the same path in the reproduction;
 * a file the reproduction marks deterministic that the original lacks is EXTRA. Sorted by path.
 */
export function compareDeterministic(original: BundleIndex, repro: BundleIndex): FileComparison[] {
  const theirs = new Map(repro.files.map((f) => [f.path, f]));
  const ours = new Map(original.files.map((f) => [f.path, f]));
  const rows: FileComparison[] = [];
  for (const f of original.files) {
    if (!f.deterministic) continue;
    const g = theirs.get(f.path);
    rows.push({
      path: f.path,
      original: f.sha256,
      reproduced: g?.sha256 ?? null,
      verdict: !g ? "MISSING" : g.sha256 === f.sha256 ? "match" : "DIFFERS",
    });
  }
  for (const g of repro.files) {
    if (g.deterministic && !ours.get(g.path)?.deterministic) {
      rows.push({ path: g.path, original: null, reproduced: g.sha256, verdict: "EXTRA" });
    }
  }
  return rows.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** The comparison as a plain-text table (short shas; full ones are in the two bundle.json). */
export function formatComparison(rows: readonly FileComparison[]): string {
  const short = (s: string | null) => (s === null ? "-" : s.slice(0, 16));
  const head = ["file", "original sha256", "new sha256", "verdict"];
  const body = rows.map((r) => [r.path, short(r.original), short(r.reproduced), r.verdict]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(w[i])).join("  ").trimEnd();
  return [line(head), line(w.map((n) => "-".repeat(n))), ...body.map(line)].join("\n");
}
