/**
 * Held-out evaluation results (eval.json) as tables of mean / standard error / count.
 *
 * eval.json's shape grows with the evaluations, so it is read generically: any object with a
 * numeric `mean` (optionally `se`, `n`), any object with `se`/`stderr` and an `accuracy`,
 * `winRate`, `rate` or `value`, and any plain number (except tallies such as `n` or `wins`) is a
 * statistic, and its path names
 * the table (all but the last key) and the category (the last key). For example
 * `{winRate: {overall: {mean, se}, perSubset: {koala: {mean, se, n}}}}` gives the tables
 * `winRate` (category `overall`) and `winRate.perSubset` (category `koala`); a per-subset table
 * whose parent has an `overall` also lists it first, like the paper's win-rate figure.
 *
 * @module
 */
import type { JsonObject } from "./load.ts";

/** One evaluated number: a mean with its standard error and sample count when known. */
export interface EvalStat {
  mean: number;
  se?: number;
  n?: number;
}

/** Statistics sharing a table name, in the order the categories first appear. */
export interface EvalTable {
  name: string;
  categories: string[];
  /** category -> statistic. */
  stats: Map<string, EvalStat>;
}

// Bare numbers under these keys describe a statistic (its size, spread or tallies), they are
// not one.
const DESCRIPTIVE_KEYS = new Set([
  "n",
  "se",
  "stderr",
  "sd",
  "std",
  "count",
  "seed",
  "total",
  "correct",
  "wins",
  "ties",
  "losses",
]);
// Names a statistic object may give its value when it also has a `se`/`stderr`
// (e.g. {accuracy, stderr, n} or {winRate, stderr, n}).
const VALUE_KEYS = ["mean", "accuracy", "winRate", "rate", "value"];

const finite = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);

function asStat(v: unknown): EvalStat | undefined {
  if (finite(v)) return { mean: v };
  if (v === null || typeof v !== "object" || Array.isArray(v)) return undefined;
  const o = v as JsonObject;
  const se = finite(o.se) ? o.se : finite(o.stderr) ? o.stderr : undefined;
  const key = finite(o.mean)
    ? "mean"
    : se !== undefined
    ? VALUE_KEYS.find((k) => finite(o[k]))
    : undefined;
  if (key === undefined) return undefined;
  const stat: EvalStat = { mean: o[key] as number };
  if (se !== undefined) stat.se = se;
  if (finite(o.n)) stat.n = o.n;
  return stat;
}

/** Every statistic in an eval.json object with its key path. */
export function evalStats(evalJson: JsonObject): { path: string[]; stat: EvalStat }[] {
  const out: { path: string[]; stat: EvalStat }[] = [];
  const walk = (v: unknown, path: string[]) => {
    const stat = asStat(v);
    if (stat) {
      if (typeof v === "number" && DESCRIPTIVE_KEYS.has(path[path.length - 1])) return;
      out.push({ path, stat });
      return;
    }
    if (v !== null && typeof v === "object" && !Array.isArray(v)) {
      for (const [k, child] of Object.entries(v)) walk(child, [...path, k]);
    }
  };
  walk(evalJson, []);
  return out;
}

/** Groups an eval.json's statistics into tables (see the module notes for the naming). */
export function evalTables(evalJson: JsonObject): EvalTable[] {
  const tables = new Map<string, EvalTable>();
  const stats = evalStats(evalJson);
  const byPath = new Map(stats.map((s) => [s.path.join("."), s.stat]));
  const add = (name: string, category: string, stat: EvalStat) => {
    let t = tables.get(name);
    if (!t) tables.set(name, t = { name, categories: [], stats: new Map() });
    if (!t.stats.has(category)) t.categories.push(category);
    t.stats.set(category, stat);
  };
  for (const { path, stat } of stats) {
    if (path.length === 1) {
      add(path[0], "overall", stat);
      continue;
    }
    const name = path.slice(0, -1).join(".");
    if (path.length === 3 && !tables.has(name)) {
      // First stat of a per-subset table: lead with the parent's overall, if there is one.
      const overall = byPath.get(`${path[0]}.overall`);
      if (overall && path[1] !== "overall") add(name, "overall", overall);
    }
    add(name, path[path.length - 1], stat);
  }
  return [...tables.values()];
}

/** "38.8 ± 1.7 (n=805)" style text for a table cell. */
export function formatStat(stat: EvalStat | undefined): string {
  if (!stat) return "–";
  const digits = (x: number) => (Math.abs(x) >= 100 ? 1 : Math.abs(x) >= 1 ? 3 : 4);
  let s = stat.mean.toFixed(digits(stat.mean));
  if (stat.se !== undefined) s += ` ± ${stat.se.toFixed(digits(stat.se))}`;
  if (stat.n !== undefined) s += ` (n=${stat.n})`;
  return s;
}
