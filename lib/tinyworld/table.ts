/**
 * The paper's table in miniature (LSP.md, "Evaluation and reported numbers"), from the members of
 * a `tiny-table` sweep: one row per arm (base, grpo, lsp-zero, lsp, lsp-grpo) with the held-out
 * accuracy over its seeds, a 95% interval of the paired difference against the base over seeds and
 * tasks, win/tie/loss against the base, accuracy by level, and for the self-play arms what the
 * challenger wrote early and late in training. Pure: the sweep's aggregation reads the members'
 * files and writes what this returns.
 *
 * The interval. For an arm with S seeds and the same T held-out tasks, d[s][t] = policy_s right on
 * task t minus the base right on it (-1, 0 or 1). Seeds and tasks are crossed random effects, so
 * the variance of the mean difference is estimated from the two-way ANOVA mean squares:
 * Var(mean d) = (MS_seed + MS_task - MS_residual) / (S T) (never below MS_residual / (S T)),
 * and the interval is mean +- 1.96 SE. With one seed it reduces to the paired task-level interval.
 *
 * @module
 */
import { parseTask } from "./tasks.ts";

/** The arms of the table, in the paper's row order. */
export const TABLE_ARMS = ["base", "grpo", "lsp-zero", "lsp", "lsp-grpo"] as const;

/** What the table needs of one member run. */
export interface TableMember {
  arm: string;
  seed: number;
  /** Its eval.json's policy and base solver results on the held-out set. */
  policy: SolverResults;
  base: SolverResults;
  /** Its metrics.jsonl lines (the `queries` statistics of the self-play arms). */
  metrics: readonly { iter?: number; queries?: QueryShares }[];
  /** The challenger's queries of its samples.jsonl, by iteration (self-play arms). */
  queries: readonly { iter: number; queries: readonly string[] }[];
}

/** The solver part of a tiny eval report. */
export interface SolverResults {
  overall: { accuracy: number };
  perTask: readonly number[];
  byLevel: Record<string, { accuracy: number }>;
}

/** A challenger's query statistics of one iteration (lib/rl/metrics.ts `queries`). */
export interface QueryShares {
  distinctShare: number;
  wellFormedShare: number | null;
  inRangeShare: number | null;
}

/** What the challenger wrote over a phase of training. */
export interface ChallengerPhase {
  wellFormed: number | null;
  inRange: number | null;
  distinct: number;
  /** Share of sampled queries per level ("1".."5", "6" beyond the range, "malformed"). */
  levels: Record<string, number>;
}

/** One row of the table. */
export interface TableRow {
  arm: string;
  /** Mean held-out accuracy over the seeds. */
  accuracy: number;
  /** 95% interval of the paired difference against the base (null for the base). */
  ci95: [number, number] | null;
  /** The mean paired difference against the base and its standard error. */
  difference: { mean: number; se: number } | null;
  /** Against the base on the same tasks: (wins + ties / 2) / pairs, and the counts. */
  winRate: number;
  wins: number;
  ties: number;
  losses: number;
  seeds: number[];
  byLevel: Record<string, number>;
  /** First and last fifth of training (self-play arms). */
  challenger: { early: ChallengerPhase; late: ChallengerPhase } | null;
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** The paired difference d[s][t]'s mean and standard error (see the module doc). */
export function pairedDifference(d: readonly (readonly number[])[]): { mean: number; se: number } {
  const S = d.length, T = d[0]?.length ?? 0;
  if (S === 0 || T < 2 || d.some((row) => row.length !== T)) {
    throw new Error(`pairedDifference: need S >= 1 rows of the same T >= 2 tasks`);
  }
  const grand = mean(d.map((row) => mean(row)));
  const seedMeans = d.map((row) => mean(row));
  const taskMeans = Array.from({ length: T }, (_, t) => mean(d.map((row) => row[t])));
  if (S === 1) {
    const v = d[0].reduce((a, x) => a + (x - grand) ** 2, 0) / (T - 1);
    return { mean: grand, se: Math.sqrt(v / T) };
  }
  const msSeed = T * seedMeans.reduce((a, m) => a + (m - grand) ** 2, 0) / (S - 1);
  const msTask = S * taskMeans.reduce((a, m) => a + (m - grand) ** 2, 0) / (T - 1);
  let ssRes = 0;
  for (let s = 0; s < S; s++) {
    for (let t = 0; t < T; t++) ssRes += (d[s][t] - seedMeans[s] - taskMeans[t] + grand) ** 2;
  }
  const msRes = ssRes / ((S - 1) * (T - 1));
  const variance = Math.max(msSeed + msTask - msRes, msRes) / (S * T);
  return { mean: grand, se: Math.sqrt(variance) };
}

/** Level of a challenger query: "1".."5", "6" (past the range) or "malformed". */
function queryLevel(q: string): string {
  const p = parseTask(q);
  return p.ok ? String(p.task.level) : "malformed";
}

function phase(members: readonly TableMember[], from: number, to: number): ChallengerPhase {
  const lines = members.flatMap((m) =>
    m.metrics.filter((l) => l.iter !== undefined && l.iter >= from && l.iter <= to && l.queries)
  );
  const avg = (f: (q: QueryShares) => number | null) => {
    const xs = lines.map((l) => f(l.queries!)).filter((x): x is number => x !== null);
    return xs.length ? mean(xs) : null;
  };
  const qs = members.flatMap((m) =>
    m.queries.filter((s) => s.iter >= from && s.iter <= to).flatMap((s) => s.queries)
  );
  const levels: Record<string, number> = {};
  for (const q of qs) levels[queryLevel(q)] = (levels[queryLevel(q)] ?? 0) + 1;
  for (const k of Object.keys(levels)) levels[k] /= qs.length;
  return {
    wellFormed: avg((q) => q.wellFormedShare),
    inRange: avg((q) => q.inRangeShare),
    distinct: avg((q) => q.distinctShare) ?? 0,
    levels,
  };
}

/**
 * The table's rows from the members (any order). The base's per-task results come from the
 * members that started from it (every arm but lsp-grpo, whose reference is its LSP model), and
 * must agree across them.
 */
export function tinyTable(members: readonly TableMember[], iterations: number): TableRow[] {
  const fromBase = members.filter((m) => m.arm !== "lsp-grpo");
  if (fromBase.length === 0) throw new Error("tiny table: no member started from the base");
  const base = fromBase[0].base;
  for (const m of fromBase) {
    if (m.base.perTask.join("") !== base.perTask.join("")) {
      throw new Error(`tiny table: ${m.arm} seed ${m.seed} evaluated another base`);
    }
  }
  const T = base.perTask.length;
  const rows: TableRow[] = [{
    arm: "base",
    accuracy: base.overall.accuracy,
    ci95: null,
    difference: null,
    winRate: 0.5,
    wins: 0,
    ties: T,
    losses: 0,
    seeds: [],
    byLevel: Object.fromEntries(Object.entries(base.byLevel).map(([k, v]) => [k, v.accuracy])),
    challenger: null,
  }];
  for (const arm of TABLE_ARMS.slice(1)) {
    const ms = members.filter((m) => m.arm === arm).sort((a, b) => a.seed - b.seed);
    if (ms.length === 0) continue;
    for (const m of ms) {
      if (m.policy.perTask.length !== T) {
        throw new Error(`tiny table: ${arm} seed ${m.seed} has ${m.policy.perTask.length} tasks`);
      }
    }
    const d = ms.map((m) => m.policy.perTask.map((x, t) => x - base.perTask[t]));
    const diff = pairedDifference(d);
    const flat = d.flat();
    const wins = flat.filter((x) => x > 0).length, losses = flat.filter((x) => x < 0).length;
    const ties = flat.length - wins - losses;
    const levels = Object.keys(ms[0].policy.byLevel);
    const selfPlay = ms.some((m) => m.metrics.some((l) => l.queries));
    const fifth = Math.max(1, Math.round(iterations / 5));
    rows.push({
      arm,
      accuracy: mean(ms.map((m) => m.policy.overall.accuracy)),
      ci95: [diff.mean - 1.96 * diff.se, diff.mean + 1.96 * diff.se],
      difference: diff,
      winRate: (wins + ties / 2) / flat.length,
      wins,
      ties,
      losses,
      seeds: ms.map((m) => m.seed),
      byLevel: Object.fromEntries(
        levels.map((k) => [k, mean(ms.map((m) => m.policy.byLevel[k].accuracy))]),
      ),
      challenger: selfPlay
        ? { early: phase(ms, 1, fifth), late: phase(ms, iterations - fifth + 1, iterations) }
        : null,
    });
  }
  return rows;
}

/** The table as text, with the paper's v3 numbers beside it for orientation. */
export function formatTinyTable(rows: readonly TableRow[]): string {
  const paper: Record<string, string> = {
    base: "26.5",
    grpo: "38.8",
    "lsp-zero": "32.0",
    lsp: "36.4",
    "lsp-grpo": "39.5",
  };
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const signed = (x: number) => `${x >= 0 ? "+" : ""}${(100 * x).toFixed(1)}`;
  const lines = [
    "arm       held-out  vs base (95% CI)        win/tie/loss     win rate  paper (AlpacaEval v3)",
  ];
  for (const r of rows) {
    const ci = r.ci95 && r.difference
      ? `${signed(r.difference.mean)} [${signed(r.ci95[0])}, ${signed(r.ci95[1])}]`
      : "-";
    lines.push(
      `${r.arm.padEnd(9)} ${pct(r.accuracy).padStart(8)}  ${ci.padEnd(22)}  ` +
        `${`${r.wins}/${r.ties}/${r.losses}`.padEnd(15)}  ${r.winRate.toFixed(3).padStart(8)}  ` +
        `${paper[r.arm] ?? "-"}`,
    );
  }
  lines.push("", "accuracy by level:");
  for (const r of rows) {
    lines.push(
      `${r.arm.padEnd(9)} ` +
        Object.entries(r.byLevel).map(([k, v]) => `L${k} ${pct(v)}`).join("  "),
    );
  }
  const challengers = rows.filter((r) => r.challenger);
  if (challengers.length) {
    lines.push("", "challenger (first fifth -> last fifth of training):");
    for (const r of challengers) {
      const { early, late } = r.challenger!;
      const share = (x: number | null) => x === null ? "n/a" : pct(x);
      const lv = (p: ChallengerPhase) =>
        Object.entries(p.levels).sort().map(([k, v]) => `${k}:${pct(v)}`).join(" ");
      lines.push(
        `${r.arm.padEnd(9)} well-formed ${share(early.wellFormed)} -> ${share(late.wellFormed)}, ` +
          `in range ${share(early.inRange)} -> ${share(late.inRange)}, distinct ` +
          `${pct(early.distinct)} -> ${pct(late.distinct)}; levels ${lv(early)} -> ${lv(late)}`,
      );
    }
  }
  return lines.join("\n");
}
