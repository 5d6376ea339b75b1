/**
 * Figure specifications: plain, JSON-serialisable chart.js configurations built from loaded
 * bundles. The same spec is rendered to PNG on the server (render_png.ts) and drawn live in
 * report.html, so both show the same thing.
 *
 * Long series: the raw points are shown faintly (downsampled with LTTB past
 * {@link MAX_DISPLAY_POINTS}) under a bold EMA line computed over all raw points.
 *
 * @module
 */
import { ema, emaAlphaFor, lttb, type Point } from "./downsample.ts";
import { type EvalStat, evalTables } from "./eval_table.ts";
import type { BundleData } from "./load.ts";

/** A figure: where it goes, and the chart.js configuration that draws it. */
export interface Figure {
  /** File-name-safe id, unique within its group. */
  id: string;
  title: string;
  /** Section the figure belongs to: a run label, "comparison" or "evaluation". */
  group: string;
  /** chart.js configuration (JSON only: no functions). */
  config: Record<string, unknown>;
}

/** Default PNG size of a figure. */
export const FIGURE_SIZE = { width: 800, height: 450 } as const;
/** Raw points drawn per series at most; longer series are LTTB-downsampled for display. */
export const MAX_DISPLAY_POINTS = 400;
/** Series with at least this many points also get an EMA line. */
export const MIN_POINTS_FOR_EMA = 20;
/** Error bars span mean ± this many standard errors (a 95% normal interval). */
export const ERROR_BAR_Z = 1.96;

const PALETTE = [
  "#4e79a7",
  "#f28e2b",
  "#e15759",
  "#76b7b2",
  "#59a14f",
  "#edc948",
  "#b07aa1",
  "#ff9da7",
  "#9c755f",
  "#bab0ac",
];

/** Colour of the i-th run or series. */
export function colorFor(i: number): string {
  return PALETTE[i % PALETTE.length];
}

/** A file-name-safe version of a metric or table name. */
export function safeId(name: string): string {
  const id = name.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^[._]+/, "");
  return id === "" ? "figure" : id.slice(0, 120);
}

/** Makes ids unique within one list by suffixing -2, -3, ... on collisions. */
function uniqueIds(figures: Figure[]): Figure[] {
  const seen = new Map<string, number>();
  for (const f of figures) {
    const key = `${f.group}\u0000${f.id}`;
    const count = (seen.get(key) ?? 0) + 1;
    seen.set(key, count);
    if (count > 1) f.id = `${f.id}-${count}`;
  }
  return figures;
}

function baseOptions(title: string, subtitle: string, legend: boolean) {
  return {
    animation: false,
    responsive: false,
    devicePixelRatio: 1,
    interaction: { mode: "nearest", intersect: false },
    plugins: {
      title: { display: true, text: title, font: { size: 15 } },
      subtitle: { display: subtitle !== "", text: subtitle },
      legend: { display: legend },
    },
  };
}

/** Datasets for one series: faint raw points plus, for long series, a bold EMA line. */
function seriesDatasets(label: string, points: readonly Point[], color: string) {
  const n = points.length;
  const shown = lttb(points, MAX_DISPLAY_POINTS);
  const smooth = n >= MIN_POINTS_FOR_EMA;
  const datasets: Record<string, unknown>[] = [{
    label: smooth ? `${label} (raw)` : label,
    data: shown,
    borderColor: smooth ? `${color}66` : color,
    backgroundColor: smooth ? `${color}66` : color,
    borderWidth: smooth ? 1 : 2,
    pointRadius: n <= 60 ? 2 : 0,
  }];
  if (smooth) {
    datasets.push({
      label: `${label} (EMA)`,
      data: lttb(ema(points, emaAlphaFor(n)), MAX_DISPLAY_POINTS),
      borderColor: color,
      backgroundColor: color,
      borderWidth: 2.5,
      pointRadius: 0,
    });
  }
  return datasets;
}

function seriesNote(n: number): string {
  const parts = [`${n} points`];
  if (n > MAX_DISPLAY_POINTS) parts.push(`raw shown LTTB-downsampled to ${MAX_DISPLAY_POINTS}`);
  if (n >= MIN_POINTS_FOR_EMA) parts.push(`EMA span ≈ ${Math.max(1, Math.round(n / 25))}`);
  return parts.join("; ");
}

function lineConfig(
  title: string,
  subtitle: string,
  xName: string,
  yName: string,
  datasets: Record<string, unknown>[],
) {
  return {
    type: "line",
    data: { datasets },
    options: {
      ...baseOptions(title, subtitle, datasets.length > 1),
      scales: {
        x: { type: "linear", title: { display: true, text: xName } },
        y: { type: "linear", title: { display: true, text: yName } },
      },
    },
  };
}

/** One line figure per metric series of a run. */
export function runMetricFigures(bundle: BundleData): Figure[] {
  const figures: Figure[] = [];
  const xName = bundle.xName ?? "iter";
  for (const [name, points] of bundle.series) {
    const title = `${name} — ${bundle.label}`;
    figures.push({
      id: safeId(name),
      title,
      group: bundle.label,
      config: lineConfig(
        title,
        seriesNote(points.length),
        xName,
        name,
        seriesDatasets(name, points, colorFor(0)),
      ),
    });
  }
  return uniqueIds(figures);
}

/** Reward and KL series first, then the rest in name order. */
function comparisonOrder(a: string, b: string): number {
  const rank = (s: string) => (/reward/i.test(s) ? 0 : /(^|[^a-z])kl/i.test(s) ? 1 : 2);
  return rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0);
}

/**
 * Across runs: every metric present in at least two bundles (reward and KL curves first), all
 * runs on one axis.
 */
export function comparisonFigures(bundles: readonly BundleData[]): Figure[] {
  const counts = new Map<string, number>();
  for (const b of bundles) {
    for (const name of b.series.keys()) counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  const names = [...counts].filter(([, c]) => c >= 2).map(([n]) => n).sort(comparisonOrder);
  const figures: Figure[] = [];
  for (const name of names) {
    const datasets: Record<string, unknown>[] = [];
    const notes: string[] = [];
    bundles.forEach((b, i) => {
      const points = b.series.get(name);
      if (!points) return;
      datasets.push(...seriesDatasets(b.label, points, colorFor(i)));
      notes.push(`${b.label}: ${points.length}`);
    });
    const title = `${name} — comparison`;
    figures.push({
      id: safeId(name),
      title,
      group: "comparison",
      config: lineConfig(
        title,
        `points per run: ${notes.join(", ")}`,
        bundles[0].xName ?? "iter",
        name,
        datasets,
      ),
    });
  }
  return uniqueIds(figures);
}

/**
 * Held-out results: one bar figure per eval table (e.g. win rate overall, win rate per subset,
 * accuracy by difficulty), a bar per run in each category, error bars at ±1.96 SE where known.
 */
export function evalFigures(bundles: readonly BundleData[]): Figure[] {
  const perRun = bundles.map((b) => b.eval ? evalTables(b.eval) : []);
  const names: string[] = [];
  const categories = new Map<string, string[]>();
  for (const tables of perRun) {
    for (const t of tables) {
      if (!categories.has(t.name)) {
        names.push(t.name);
        categories.set(t.name, []);
      }
      const cats = categories.get(t.name)!;
      for (const c of t.categories) if (!cats.includes(c)) cats.push(c);
    }
  }
  const figures: Figure[] = [];
  for (const name of names) {
    const cats = categories.get(name)!;
    let lo = 0, hi = 0;
    const datasets: Record<string, unknown>[] = [];
    bundles.forEach((b, i) => {
      const table = perRun[i].find((t) => t.name === name);
      if (!table) return;
      const stats: (EvalStat | undefined)[] = cats.map((c) => table.stats.get(c));
      const errors = stats.map((s) => (s?.se !== undefined ? ERROR_BAR_Z * s.se : null));
      stats.forEach((s, j) => {
        if (!s) return;
        lo = Math.min(lo, s.mean - (errors[j] ?? 0));
        hi = Math.max(hi, s.mean + (errors[j] ?? 0));
      });
      datasets.push({
        label: b.label,
        data: stats.map((s) => (s ? s.mean : null)),
        errorBars: errors,
        backgroundColor: colorFor(i),
        borderColor: colorFor(i),
      });
    });
    const hasErrors = datasets.some((d) => (d.errorBars as unknown[]).some((e) => e !== null));
    const title = `${name} — held-out evaluation`;
    figures.push({
      id: safeId(`eval-${name}`),
      title,
      group: "evaluation",
      config: {
        type: "bar",
        data: { labels: cats, datasets },
        options: {
          ...baseOptions(title, hasErrors ? `error bars: mean ± ${ERROR_BAR_Z} SE` : "", true),
          scales: {
            x: { type: "category" },
            // Leave room for the error bars, which chart.js does not know about.
            y: { type: "linear", suggestedMin: lo, suggestedMax: hi * 1.05 },
          },
        },
      },
    });
  }
  return uniqueIds(figures);
}

/**
 * A benchmark bundle's table (bench.json): one horizontal bar figure per unit (the measured
 * figures) and, where the adapter's limits are known, one of each figure's fraction of its limit.
 */
export function benchFigures(bundle: BundleData): Figure[] {
  const rows = bundle.bench;
  if (rows.length === 0) return [];
  const figures: Figure[] = [];
  const bars = (id: string, title: string, subtitle: string, labels: string[], data: number[]) => {
    figures.push({
      id: safeId(id),
      title,
      group: bundle.label,
      config: {
        type: "bar",
        data: { labels, datasets: [{ label: title, data, backgroundColor: colorFor(0) }] },
        options: {
          ...baseOptions(title, subtitle, false),
          indexAxis: "y",
          scales: { x: { type: "linear", beginAtZero: true }, y: { type: "category" } },
        },
      },
    });
  };
  for (const unit of [...new Set(rows.map((r) => r.unit))]) {
    const of = rows.filter((r) => r.unit === unit);
    bars(
      `bench-${unit}`,
      `benchmark: ${unit}`,
      bundle.label,
      of.map((r) => r.case),
      of.map((r) => r.value),
    );
  }
  const withLimit = rows.filter((r) => r.fraction !== null);
  if (withLimit.length > 0) {
    bars(
      "bench-fraction-of-limits",
      "benchmark: fraction of the adapter's limits",
      [...new Set(withLimit.map((r) => r.of))].join("; "),
      withLimit.map((r) => `${r.case} (${r.unit})`),
      withLimit.map((r) => r.fraction as number),
    );
  }
  return uniqueIds(figures);
}
