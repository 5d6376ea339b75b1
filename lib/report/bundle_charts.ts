/**
 * The charts every run gets in its own bundle: one PNG per metric series, one per held-out
 * evaluation table and a benchmark's figures (bench.json's table), under `charts/`. The runner calls {@link writeBundleCharts} at the
 * end of a run and writes the files through its bundle writer, so bundle.json lists them.
 *
 * @module
 */
import {
  benchFigures,
  evalFigures,
  type Figure,
  FIGURE_SIZE,
  runMetricFigures,
} from "./figures.ts";
import { type BundleData, loadBundle } from "./load.ts";

/** Folder of a bundle's own charts, relative to the bundle. */
export const CHARTS_DIR = "charts";

/** The figures of one bundle's own charts, each with its bundle-relative PNG path. */
export function bundleChartFigures(bundle: BundleData): { path: string; figure: Figure }[] {
  const figures = [...runMetricFigures(bundle), ...evalFigures([bundle]), ...benchFigures(bundle)];
  return figures.map((figure) => ({
    path: `${CHARTS_DIR}/${figure.id}.png`,
    figure,
  }));
}

/**
 * Renders the charts of the bundle at `bundleDir` (from whatever of metrics.jsonl and eval.json
 * it has) and hands each PNG to `write` with its bundle-relative path (`charts/<name>.png`).
 * Returns the paths written, in order; none when the bundle has no metrics or evaluation.
 */
export async function writeBundleCharts(
  bundleDir: string,
  write: (relPath: string, bytes: Uint8Array) => Promise<void>,
): Promise<string[]> {
  const items = bundleChartFigures(await loadBundle(bundleDir));
  if (items.length === 0) return [];
  // The renderer pulls in chart.js and a native canvas: load it only when there is work.
  const { renderPng } = await import("./render_png.ts");
  for (const { path, figure } of items) {
    await write(path, await renderPng(figure.config, FIGURE_SIZE));
  }
  return items.map((i) => i.path);
}
