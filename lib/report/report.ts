/**
 * A report over one or many bundles: PNG charts plus a self-contained report.html.
 *
 * Where it goes by default: for one bundle that is not sealed yet (no bundle.json), its own
 * `charts/` and `report.html` beside them (the same chart files `writeBundleCharts` makes
 * at the end of a run). For a sealed bundle (adding files would make `verify` fail) or for
 * many, `results/reports/<hash>/` next to the bundles' experiments, the hash naming the bundles.
 *
 * @module
 */
import { isEmptyOrMissing } from "../util/fs.ts";
import { UserError } from "../util/user_error.ts";
import { createHash } from "node:crypto";
import { dirname, join, resolve } from "node:path";
import { bundleChartFigures } from "./bundle_charts.ts";
import {
  benchFigures,
  comparisonFigures,
  evalFigures,
  type Figure,
  FIGURE_SIZE,
  runMetricFigures,
  safeId,
} from "./figures.ts";
import { buildReportHtml } from "./html.ts";
import { type BundleData, loadBundle } from "./load.ts";
import type { Size } from "./render_png.ts";

/** Options of {@link writeReport}. */
export interface ReportOptions {
  /** Output folder; see the module notes for the default. */
  outDir?: string;
  /** PNG and canvas size of each figure. */
  size?: Size;
  /**
   * Write into a non-empty output folder that holds no report of ours (report.html and charts/
   * are written; nothing else there is touched). Without it such a folder is refused.
   */
  force?: boolean;
}

/** Whether `dir` holds a report.html that this code wrote (its title says so). */
async function holdsOurReport(dir: string): Promise<boolean> {
  try {
    const head = (await Deno.readTextFile(join(dir, "report.html"))).slice(0, 4096);
    return /<title>selfplay report: /.test(head);
  } catch {
    return false;
  }
}

/**
 * Refuses an output folder whose files a report could overwrite (report.html, charts/*.png)
 * unless it is empty, holds an earlier report of ours, is the unsealed bundle being reported on
 * (its own charts), or `force` is set.
 */
async function checkReportTarget(
  outDir: string,
  bundles: readonly BundleData[],
  force: boolean,
): Promise<void> {
  if (force || await isEmptyOrMissing(outDir) || await holdsOurReport(outDir)) return;
  if (bundles.some((b) => resolve(b.dir) === outDir && b.bundle === undefined)) return;
  throw new UserError(
    `report: ${outDir} is not empty and holds no report of ours; its report.html or charts/ ` +
      `could be overwritten: choose an empty or new folder with --out, or pass --force to write ` +
      `into it (other files are left alone)`,
  );
}

/** What {@link writeReport} wrote. */
export interface ReportResult {
  outDir: string;
  htmlPath: string;
  /** Absolute paths of the PNG files. */
  pngs: string[];
}

/** The default output folder for a set of bundles (see the module notes). */
export function defaultReportDir(bundles: readonly BundleData[]): string {
  // A sealed bundle stays as sealed: any file added to it would fail `verify`.
  if (bundles.length === 1 && bundles[0].bundle === undefined) return bundles[0].dir;
  const ids = bundles.map((b) => typeof b.bundle?.rootHash === "string" ? b.bundle.rootHash : b.dir)
    .sort();
  const hash = createHash("sha256").update(ids.join("\n")).digest("hex").slice(0, 16);
  // Bundles live in results/<experiment>/<run-id>/: reports go in results/reports/.
  return join(dirname(dirname(bundles[0].dir)), "reports", hash);
}

/** Reads chart.js's browser (UMD) build, to be inlined into report.html. */
export async function readChartJsUmd(): Promise<string> {
  const url = new URL("../../node_modules/chart.js/dist/chart.umd.min.js", import.meta.url);
  try {
    return await Deno.readTextFile(url);
  } catch (e) {
    throw new Error(
      `chart.js browser build not found at ${url.pathname} (${(e as Error).message}); ` +
        `run \`deno install\` in the repository root`,
    );
  }
}

/** Figures and their PNG paths (relative to the output folder) for a set of bundles. */
export function reportFigures(bundles: readonly BundleData[]): { path: string; figure: Figure }[] {
  if (bundles.length === 1) return bundleChartFigures(bundles[0]);
  const out: { path: string; figure: Figure }[] = [];
  for (const f of comparisonFigures(bundles)) {
    out.push({ path: `charts/comparison/${f.id}.png`, figure: f });
  }
  for (const f of evalFigures(bundles)) {
    out.push({ path: `charts/evaluation/${f.id}.png`, figure: f });
  }
  const runDirs = new Set<string>();
  for (const b of bundles) {
    let runDir = safeId(b.label);
    for (let k = 2; runDirs.has(runDir); k++) runDir = `${safeId(b.label)}-${k}`;
    runDirs.add(runDir);
    for (const f of [...runMetricFigures(b), ...benchFigures(b)]) {
      out.push({ path: `charts/runs/${runDir}/${f.id}.png`, figure: f });
    }
  }
  return out;
}

/**
 * Runs of one experiment compared side by side are told apart in legends by what their command
 * lines set (provenance `sets`), e.g. "tiny-lsp [loss.kl.in=loss]" beside "tiny-lsp [as
 * shipped]", instead of by run id alone.
 */
export function labelBySettings(bundles: BundleData[]): void {
  const byExperiment = new Map<string, BundleData[]>();
  for (const b of bundles) {
    byExperiment.set(b.experiment, [...byExperiment.get(b.experiment) ?? [], b]);
  }
  for (const group of byExperiment.values()) {
    if (group.length < 2) continue;
    const setsOf = (b: BundleData) => {
      const sets = b.provenance?.sets;
      return Array.isArray(sets) ? sets.filter((x): x is string => typeof x === "string") : [];
    };
    // Settings every run of the group shares say nothing about which is which.
    const shared = setsOf(group[0]).filter((s) => group.every((b) => setsOf(b).includes(s)));
    const labels = group.map((b) => {
      const own = setsOf(b).filter((s) => !shared.includes(s));
      return `${b.experiment} [${own.length ? own.join(", ") : "as shipped"}]`;
    });
    // Only when the settings tell every run apart; else experiment/runId stays.
    if (new Set(labels).size === group.length) group.forEach((b, i) => (b.label = labels[i]));
  }
}

/** Loads the bundles, renders every figure to PNG and writes report.html. */
export async function writeReport(
  bundleDirs: readonly string[],
  options: ReportOptions = {},
): Promise<ReportResult> {
  if (bundleDirs.length === 0) throw new UserError("report: name at least one bundle folder");
  const bundles: BundleData[] = [];
  for (const dir of bundleDirs) bundles.push(await loadBundle(dir));
  labelBySettings(bundles);
  const labels = new Set<string>();
  for (const b of bundles) {
    // Legends and sections are keyed by label: the same run named twice must stay apart.
    const base = b.label;
    for (let k = 2; labels.has(b.label); k++) b.label = `${base} (${k})`;
    labels.add(b.label);
  }
  const size = options.size ?? FIGURE_SIZE;
  const outDir = resolve(options.outDir ?? defaultReportDir(bundles));
  await checkReportTarget(outDir, bundles, options.force === true);
  const items = reportFigures(bundles);

  const { renderPng } = await import("./render_png.ts");
  const pngs: string[] = [];
  for (const { path, figure } of items) {
    const abs = join(outDir, path);
    await Deno.mkdir(dirname(abs), { recursive: true });
    await Deno.writeFile(abs, await renderPng(figure.config, size));
    pngs.push(abs);
  }
  const title = bundles.length === 1
    ? `selfplay report: ${bundles[0].label}`
    : `selfplay report: ${bundles.length} runs`;
  const html = buildReportHtml({
    title,
    bundles,
    figures: items.map((i) => i.figure),
    chartJsSource: await readChartJsUmd(),
    size,
  });
  const htmlPath = join(outDir, "report.html");
  await Deno.mkdir(outDir, { recursive: true });
  await Deno.writeTextFile(htmlPath, html);
  return { outDir, htmlPath, pngs };
}
