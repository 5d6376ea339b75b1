/**
 * File-by-file comparison of the deterministic outputs of two bundles, and its table.
 *
 * @module
 */
import { join } from "node:path";
import { BUNDLE_INDEX_SCHEMA, type BundleIndex } from "../bundle/format.ts";
import { nestedBundleOf } from "../bundle/nested.ts";
import { tryReadJson } from "../util/json_file.ts";

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

/** The index of the bundle listed as `<dir>/bundle.json`, or null when it is absent or broken. */
async function nestedIndex(dir: string): Promise<BundleIndex | null> {
  const parsed = BUNDLE_INDEX_SCHEMA.safeParse(await tryReadJson(join(dir, "bundle.json")));
  return parsed.success ? parsed.data as BundleIndex : null;
}

/** The bundles nested in a bundle (a sweep's members), by the `X/bundle.json` it lists. */
function nestedOf(index: BundleIndex): string[] {
  return index.files.map((f) => nestedBundleOf(f.path)).filter((p): p is string => p !== null);
}

/**
 * {@link compareDeterministic} over two bundle folders and, recursively, over the bundles
 * nested in them (a sweep's members), whose rows carry their folder as a path prefix. A nested
 * bundle the reproduction lacks makes each of its deterministic files MISSING.
 */
export async function compareBundleTrees(
  originalDir: string,
  original: BundleIndex,
  reproDir: string,
  repro: BundleIndex,
): Promise<FileComparison[]> {
  const rows = compareDeterministic(original, repro);
  const empty: BundleIndex = { ...original, files: [] };
  const inners = [...new Set([...nestedOf(original), ...nestedOf(repro)])];
  for (const inner of inners) {
    const a = await nestedIndex(join(originalDir, inner)) ?? empty;
    const b = await nestedIndex(join(reproDir, inner)) ?? empty;
    const sub = await compareBundleTrees(join(originalDir, inner), a, join(reproDir, inner), b);
    rows.push(...sub.map((r) => ({ ...r, path: `${inner}/${r.path}` })));
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
