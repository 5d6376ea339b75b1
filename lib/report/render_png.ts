/**
 * Server-side PNG rendering of a figure with chart.js on @napi-rs/canvas.
 *
 * Both packages are heavy (a native canvas library, the whole of chart.js), so they are loaded
 * with dynamic import() on first use and the engine's module graph does not carry them.
 *
 * @module
 */
import { makeReportPlugins } from "./chart_plugins.ts";
import { FIGURE_SIZE } from "./figures.ts";

type ChartModule = typeof import("chart.js");
type CanvasModule = typeof import("@napi-rs/canvas");

let loaded: Promise<{ chartjs: ChartModule; canvas: CanvasModule }> | undefined;

function loadRenderer() {
  loaded ??= (async () => {
    const [chartjs, canvas] = await Promise.all([import("chart.js"), import("@napi-rs/canvas")]);
    chartjs.Chart.register(...chartjs.registerables);
    return { chartjs, canvas };
  })();
  return loaded;
}

/** Pixel size of a rendered figure. */
export interface Size {
  width: number;
  height: number;
}

/**
 * Renders a chart.js configuration to PNG bytes of exactly `size` pixels, on a white background.
 * The configuration is cloned first (chart.js writes into it).
 */
export async function renderPng(
  config: Record<string, unknown>,
  size: Size = FIGURE_SIZE,
): Promise<Uint8Array> {
  if (
    !(Number.isInteger(size.width) && Number.isInteger(size.height)) || size.width < 1 ||
    size.height < 1
  ) {
    throw new Error(`renderPng: size must be positive integers, got ${size.width}x${size.height}`);
  }
  const { chartjs, canvas: napi } = await loadRenderer();
  const canvas = napi.createCanvas(size.width, size.height);
  const cfg = structuredClone(config) as { options?: Record<string, unknown>; plugins?: unknown };
  cfg.options = { ...cfg.options, animation: false, responsive: false, devicePixelRatio: 1 };
  cfg.plugins = makeReportPlugins();
  // chart.js types expect a DOM canvas context; @napi-rs/canvas implements the same 2-D API.
  type ChartArgs = ConstructorParameters<typeof chartjs.Chart>;
  const chart = new chartjs.Chart(
    canvas.getContext("2d") as unknown as ChartArgs[0],
    cfg as unknown as ChartArgs[1],
  );
  try {
    return new Uint8Array(await canvas.encode("png"));
  } finally {
    chart.destroy();
  }
}
