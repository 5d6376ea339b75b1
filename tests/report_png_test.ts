import assert from "node:assert/strict";
import { join } from "node:path";
import { evalFigures, runMetricFigures } from "../lib/report/figures.ts";
import { loadBundle } from "../lib/report/load.ts";
import { renderPng } from "../lib/report/render_png.ts";
import { countForegroundPixels, writeFixtureBundle } from "./report_fixtures.ts";

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47];

Deno.test("line figure renders to a non-blank PNG of the requested size", async () => {
  const root = await Deno.makeTempDir();
  try {
    const dir = await writeFixtureBundle(root, { experiment: "tiny-lsp", runId: "r1", iters: 900 });
    const figures = runMetricFigures(await loadBundle(dir));
    const reward = figures.find((f) => f.id === "solver.reward.mean");
    assert.ok(reward, `figures: ${figures.map((f) => f.id)}`);
    const png = await renderPng(reward.config, { width: 640, height: 360 });
    assert.deepEqual([...png.slice(0, 4)], PNG_MAGIC);
    const { width, height, foreground } = await countForegroundPixels(png);
    assert.equal(width, 640);
    assert.equal(height, 360);
    // Axes, labels, a raw and an EMA line: a few percent of the canvas at least.
    console.log(`line figure: ${png.length} bytes, ${foreground} foreground pixels`);
    assert.ok(foreground > 0.02 * width * height, `only ${foreground} foreground pixels`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("an empty chart is detected as nearly blank (the check can fail)", async () => {
  const png = await renderPng({ type: "line", data: { datasets: [] }, options: {} }, {
    width: 200,
    height: 100,
  });
  const { foreground } = await countForegroundPixels(png);
  // Only default axis ticks: far below what a drawn figure has.
  assert.ok(foreground < 0.02 * 200 * 100, `${foreground}`);
});

Deno.test("bar figure with error bars draws the bars and the error bars", async () => {
  const root = await Deno.makeTempDir();
  try {
    const a = await loadBundle(
      await writeFixtureBundle(root, { experiment: "tiny-lsp", runId: "a", iters: 5 }),
    );
    const b = await loadBundle(
      await writeFixtureBundle(root, { experiment: "tiny-grpo", runId: "b", iters: 5, offset: 1 }),
    );
    const figure = evalFigures([a, b]).find((f) => f.id === "eval-winRate.perSubset");
    assert.ok(figure);
    const withBars = await renderPng(figure.config, { width: 500, height: 300 });
    const noBars = structuredClone(figure.config) as {
      data: { datasets: { errorBars?: unknown }[] };
    };
    for (const d of noBars.data.datasets) delete d.errorBars;
    const without = await renderPng(noBars, { width: 500, height: 300 });
    const fgWith = (await countForegroundPixels(withBars)).foreground;
    const fgWithout = (await countForegroundPixels(without)).foreground;
    assert.ok(fgWithout > 0.05 * 500 * 300, `bars: ${fgWithout}`);
    // The error bars add dark strokes on top of and above the bars.
    assert.ok(fgWith > fgWithout, `with error bars ${fgWith} <= without ${fgWithout}`);
    assert.notDeepEqual(withBars, without);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("renderPng rejects a bad size", async () => {
  await assert.rejects(
    () => renderPng({ type: "line", data: { datasets: [] } }, { width: 0, height: 10 }),
    /size/,
  );
});

Deno.test("rendering is deterministic", async () => {
  const root = await Deno.makeTempDir();
  try {
    const dir = await writeFixtureBundle(root, { experiment: "e", runId: "r", iters: 30 });
    const [fig] = runMetricFigures(await loadBundle(join(dir)));
    const one = await renderPng(fig.config, { width: 300, height: 200 });
    const two = await renderPng(fig.config, { width: 300, height: 200 });
    assert.deepEqual(one, two);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
