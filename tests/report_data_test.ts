import assert from "node:assert/strict";
import { join } from "node:path";
import { writeBundleCharts } from "../lib/report/bundle_charts.ts";
import { ema, lttb, type Point } from "../lib/report/downsample.ts";
import { evalTables, formatStat } from "../lib/report/eval_table.ts";
import {
  comparisonFigures,
  evalFigures,
  MAX_DISPLAY_POINTS,
  runMetricFigures,
} from "../lib/report/figures.ts";
import { loadBundle, metricSeries } from "../lib/report/load.ts";
import { selectTranscripts } from "../lib/report/transcripts.ts";
import { countForegroundPixels, writeFixtureBundle } from "./report_fixtures.ts";

const line = (n: number, f: (i: number) => number): Point[] =>
  Array.from({ length: n }, (_, i) => ({ x: i, y: f(i) }));

Deno.test("lttb keeps the ends and the extremes, and short series unchanged", () => {
  const pts = line(1000, (i) => Math.sin(i / 50));
  pts[333].y = 40; // a spike
  pts[777].y = -40; // a dip
  const out = lttb(pts, 100);
  assert.equal(out.length, 100);
  assert.deepEqual(out[0], pts[0]);
  assert.deepEqual(out[99], pts[999]);
  assert.ok(out.some((p) => p.x === 333 && p.y === 40), "spike kept");
  assert.ok(out.some((p) => p.x === 777 && p.y === -40), "dip kept");
  for (let i = 1; i < out.length; i++) assert.ok(out[i].x > out[i - 1].x, "x increasing");
  assert.deepEqual(lttb(pts.slice(0, 50), 100), pts.slice(0, 50));
  assert.throws(() => lttb(pts, 2), /threshold/);
  assert.equal(pts[333].y, 40, "input untouched");
});

Deno.test("ema is bias-corrected and matches the recurrence", () => {
  const pts = [{ x: 0, y: 2 }, { x: 1, y: 4 }, { x: 2, y: 0 }];
  const out = ema(pts, 0.5);
  // s1 = 1, s2 = 2.5, s3 = 1.25; corrections 1 - 0.5^k = 0.5, 0.75, 0.875.
  assert.deepEqual(out.map((p) => p.y), [2, 2.5 / 0.75, 1.25 / 0.875]);
  assert.deepEqual(
    ema(line(10, () => 3), 0.1).map((p) => Math.round(p.y * 1e9) / 1e9),
    Array(10).fill(3),
  );
  assert.throws(() => ema(pts, 0), /alpha/);
});

Deno.test("metricSeries flattens nested metrics, skips text, keeps rows without iter/step apart", () => {
  const { series, xName, records } = metricSeries([
    { step: 0, loss: 2, solver: { reward: { mean: 0.1 } }, tag: "x", bad: null },
    { check: "matmul", maxAbsError: 1e-7, pass: true },
    { step: 1, loss: 1.5, lr: 1e-6 },
  ]);
  assert.deepEqual(records, [{ check: "matmul", maxAbsError: 1e-7, pass: true }]);
  assert.equal(xName, "step");
  assert.deepEqual([...series.keys()].sort(), ["loss", "lr", "solver.reward.mean"]);
  assert.deepEqual(series.get("loss"), [{ x: 0, y: 2 }, { x: 1, y: 1.5 }]);
});

Deno.test("loadBundle tolerates missing files and names the file and line of bad ones", async () => {
  const root = await Deno.makeTempDir();
  try {
    const probe = await writeFixtureBundle(root, {
      experiment: "gpu-probe",
      runId: "p",
      iters: 1,
      // status.json stays: a folder with neither it nor bundle.json is not a bundle (an error).
      omit: ["metrics.jsonl", "samples.jsonl", "eval.json", "manifest.json"],
    });
    const b = await loadBundle(probe);
    assert.equal(b.label, "gpu-probe/p");
    assert.equal(b.series.size, 0);
    assert.equal(b.samples.length, 0);
    assert.equal(b.eval, undefined);
    assert.deepEqual(runMetricFigures(b), []);
    assert.deepEqual(evalFigures([b]), []);

    await Deno.writeTextFile(join(probe, "metrics.jsonl"), `{"iter":0,"x":1}\n{"iter":1,"x":\n`);
    await assert.rejects(() => loadBundle(probe), /metrics\.jsonl:2: invalid JSON/);
    await Deno.writeTextFile(join(probe, "metrics.jsonl"), "");
    await Deno.writeTextFile(join(probe, "eval.json"), "[1]");
    await assert.rejects(() => loadBundle(probe), /eval\.json: expected a JSON object/);
    await assert.rejects(() => loadBundle(join(root, "nope")), /nope: bundle folder not found/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("eval tables: per-subset tables lead with overall; stats keep se and n", () => {
  const tables = evalTables({
    winRate: {
      overall: { mean: 0.36, se: 0.017 },
      perSubset: { koala: { mean: 0.3, se: 0.04, n: 156 }, vicuna: { mean: 0.4, se: 0.05, n: 80 } },
    },
    accuracy: { byType: { add: 0.5, sort: { mean: 0.25, n: 40 } }, n: 120 },
    judge: "text is ignored",
    // lib/eval/winrate.ts and lib/tinyworld/heldout.ts shapes: tallies are not statistics.
    pairwise: { overall: { mean: 0.5, se: 0.1, n: 20 }, wins: 8, ties: 4, losses: 8 },
    solver: { byLevel: { "1": { n: 10, correct: 7, accuracy: 0.7, stderr: 0.15 } } },
    verifier: { n: 30, wins: 10, ties: 12, losses: 8, winRate: 0.53, stderr: 0.08 },
  });
  assert.deepEqual(tables.map((t) => [t.name, t.categories]), [
    ["winRate", ["overall"]],
    ["winRate.perSubset", ["overall", "koala", "vicuna"]],
    ["accuracy.byType", ["add", "sort"]],
    ["pairwise", ["overall"]],
    ["solver.byLevel", ["1"]],
    ["verifier", ["overall"]],
  ]);
  assert.deepEqual(tables[4].stats.get("1"), { mean: 0.7, se: 0.15, n: 10 });
  assert.deepEqual(tables[5].stats.get("overall"), { mean: 0.53, se: 0.08, n: 30 });
  assert.equal(formatStat(tables[1].stats.get("koala")), "0.3000 ± 0.0400 (n=156)");
  assert.equal(formatStat(undefined), "–");
});

Deno.test("figures: long series downsampled with an EMA line; comparisons put reward and KL first", async () => {
  const root = await Deno.makeTempDir();
  try {
    const a = await loadBundle(
      await writeFixtureBundle(root, { experiment: "x", runId: "a", iters: 2000 }),
    );
    const b = await loadBundle(
      await writeFixtureBundle(root, { experiment: "y", runId: "b", iters: 10 }),
    );
    const [fig] = runMetricFigures(a);
    const datasets = (fig.config.data as { datasets: { label: string; data: Point[] }[] }).datasets;
    assert.deepEqual(datasets.map((d) => d.data.length), [MAX_DISPLAY_POINTS, MAX_DISPLAY_POINTS]);
    assert.match(datasets[1].label, /EMA/);
    // The raw series in the bundle is untouched.
    assert.equal(a.series.get("loss")!.length, 2000);
    // Short series: raw points only.
    const short = (runMetricFigures(b)[0].config.data as { datasets: unknown[] }).datasets;
    assert.equal(short.length, 1);
    assert.deepEqual(comparisonFigures([a, b]).map((f) => f.id), [
      "solver.reward.mean",
      "kl.solver",
      "loss",
    ]);
    assert.deepEqual(comparisonFigures([a]), [], "one run: nothing to compare");
    const selected = selectTranscripts(a.samples, 3, 1);
    assert.deepEqual(selected.map((g) => [g.iter, g.samples.map((s) => s.role)]), [
      [0, ["challenger", "solver"]],
      [1999, ["judge"]],
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("writeBundleCharts hands every chart to the runner's writer", async () => {
  const root = await Deno.makeTempDir();
  try {
    const dir = await writeFixtureBundle(root, { experiment: "tiny-lsp", runId: "r", iters: 40 });
    const written = new Map<string, Uint8Array>();
    const paths = await writeBundleCharts(dir, async (rel, bytes) => {
      await Promise.resolve();
      written.set(rel, bytes);
    });
    assert.deepEqual(paths, [
      "charts/solver.reward.mean.png",
      "charts/kl.solver.png",
      "charts/loss.png",
      "charts/eval-winRate.png",
      "charts/eval-winRate.perSubset.png",
      "charts/eval-accuracy.byDifficulty.png",
    ]);
    assert.deepEqual([...written.keys()], paths);
    for (const [rel, png] of written) {
      const { width, height, foreground } = await countForegroundPixels(png);
      assert.equal(width, 800, rel);
      assert.equal(height, 450, rel);
      assert.ok(foreground > 0.02 * width * height, `${rel}: ${foreground}`);
    }
    // Nothing was written into the bundle behind the writer's back.
    const entries = [...Deno.readDirSync(dir)].map((e) => e.name);
    assert.ok(!entries.includes("charts"), entries.join(","));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
