/**
 * Our two chart.js plugins, shared by the server-side PNG renderer and the browser report:
 * - `reportBackground` paints the canvas white (PNGs are otherwise transparent);
 * - `errorBars` draws a vertical bar with caps around each point or bar of a dataset that carries
 *   `errorBars: number[]` (half-widths in data units, one per data point).
 *
 * {@link makeReportPlugins} must stay self-contained (no imports, no outside names): the HTML
 * report embeds its source text, from {@link reportPluginsSource}, so both renderers draw alike.
 *
 * @module
 */

/** Creates the plugins; self-contained so its source can be inlined into report.html. */
export function makeReportPlugins(): unknown[] {
  // Just the slice of chart.js's API the plugins use.
  interface Scale {
    getPixelForValue(v: number): number;
  }
  interface Element {
    x: number;
    width?: number;
    skip?: boolean;
  }
  interface Ctx2d {
    save(): void;
    restore(): void;
    beginPath(): void;
    moveTo(x: number, y: number): void;
    lineTo(x: number, y: number): void;
    stroke(): void;
    fillRect(x: number, y: number, w: number, h: number): void;
    globalCompositeOperation: string;
    fillStyle: unknown;
    strokeStyle: unknown;
    lineWidth: number;
  }
  interface ChartLike {
    ctx: Ctx2d;
    width: number;
    height: number;
    data: { datasets: { data: unknown[]; errorBars?: (number | null)[]; borderColor?: unknown }[] };
    isDatasetVisible(i: number): boolean;
    getDatasetMeta(i: number): { data: Element[]; yScale?: Scale };
  }
  const background = {
    id: "reportBackground",
    beforeDraw(chart: ChartLike) {
      const ctx = chart.ctx;
      ctx.save();
      ctx.globalCompositeOperation = "destination-over";
      ctx.fillStyle = "#ffffff";
      ctx.fillRect(0, 0, chart.width, chart.height);
      ctx.restore();
    },
  };
  const errorBars = {
    id: "errorBars",
    afterDatasetsDraw(chart: ChartLike) {
      const ctx = chart.ctx;
      chart.data.datasets.forEach((ds, i) => {
        const bars = ds.errorBars;
        if (!bars || !chart.isDatasetVisible(i)) return;
        const meta = chart.getDatasetMeta(i);
        const scale = meta.yScale;
        if (!scale) return;
        ctx.save();
        ctx.strokeStyle = "#222222";
        ctx.lineWidth = 1.5;
        meta.data.forEach((el, j) => {
          const err = bars[j];
          const d = ds.data[j];
          const v = typeof d === "number" ? d : (d as { y?: number } | null)?.y;
          if (typeof err !== "number" || typeof v !== "number" || el.skip) return;
          const top = scale.getPixelForValue(v + err);
          const bottom = scale.getPixelForValue(v - err);
          const cap = Math.min(10, (el.width ?? 16) / 3);
          ctx.beginPath();
          ctx.moveTo(el.x, top);
          ctx.lineTo(el.x, bottom);
          ctx.moveTo(el.x - cap, top);
          ctx.lineTo(el.x + cap, top);
          ctx.moveTo(el.x - cap, bottom);
          ctx.lineTo(el.x + cap, bottom);
          ctx.stroke();
        });
        ctx.restore();
      });
    },
  };
  return [background, errorBars];
}

/** JavaScript expression (for a browser) that evaluates to the plugins array. */
export function reportPluginsSource(): string {
  return `(${makeReportPlugins.toString()})()`;
}
