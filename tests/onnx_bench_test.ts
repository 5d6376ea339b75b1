/** The `bench-onnx` kind on a tiny synthetic config: its bundle, figures and parity checks. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadManifest } from "../lib/manifest/load.ts";
import { runExperiment } from "../lib/runner/run.ts";
import { toHfConfigJson } from "../lib/model/config.ts";
import { tinyTestConfig, writeRandomModel } from "../lib/model/random_model.ts";
import { benchOnnxKind, type BenchOnnxRow, table } from "../lib/bench/bench_onnx.ts";

const kinds = [benchOnnxKind];

async function runBench(dir: string, body: Record<string, unknown>) {
  const file = join(dir, "bo.jsonc");
  await Deno.writeTextFile(file, JSON.stringify({ description: "tiny bench-onnx", ...body }));
  const manifest = loadManifest(file, { experimentsDir: dir, kinds });
  return await runExperiment({ manifest, kinds, root: dir, resultsDir: join(dir, "results") });
}

Deno.test("bench-onnx writes both sides' speeds, their ratio and the parity checks", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bench-onnx-test-" });
  try {
    // A model folder with weights large enough (std 0.3) that a wrong position or mask in either
    // implementation changes the greedy tokens (synthetic N(0, 0.02) weights barely notice).
    const modelDir = join(dir, "model");
    await writeRandomModel(modelDir, tinyTestConfig(), { dtype: "F32", seed: 6, std: 0.3 });
    const r = await runBench(dir, {
      kind: "bench-onnx",
      model: { dir: modelDir },
      promptLen: 6,
      // Decode must outweigh timing noise (the engine's decode time is a difference of two runs),
      // and medians of 3 ride out a stall when the machine is busy.
      newTokens: 12,
      batches: [1, 3],
      warmup: 1,
      repeats: 3,
    });
    assert.equal(r.status, "completed", r.error);
    const bench = JSON.parse(await Deno.readTextFile(join(r.bundleDir, "bench.json")));
    assert.equal(bench.parameters, 19616);
    assert.ok(bench.logitsRelativeError <= 1e-5, `${bench.logitsRelativeError}`);
    assert.match(bench.onnxruntime.version, /^\d+\.\d+\.\d+$/);
    assert.ok(bench.engine.adapter.length > 0 && bench.cpu.model.length > 0);
    assert.ok(bench.loadAverage1m.start >= 0 && bench.loadAverage1m.end >= 0);
    assert.deepEqual(bench.rows.map((row: BenchOnnxRow) => row.batch), [1, 3]);
    for (const row of bench.rows as BenchOnnxRow[]) {
      assert.equal(row.greedyTokensMatch, true, `batch ${row.batch}`);
      for (const side of [row.engine, row.onnxruntime]) {
        assert.ok(side.prefillTokensPerSecond > 0 && Number.isFinite(side.prefillTokensPerSecond));
        assert.ok(side.decodeTokensPerSecond > 0 && Number.isFinite(side.decodeTokensPerSecond));
      }
      const ratio = row.engine.decodeTokensPerSecond / row.onnxruntime.decodeTokensPerSecond;
      assert.equal(row.ratio.decode, ratio);
    }
    const timings = (await Deno.readTextFile(join(r.bundleDir, "timings.jsonl"))).trim();
    assert.equal(timings.split("\n").length, 6);
    const listed = JSON.parse(await Deno.readTextFile(join(r.bundleDir, "bundle.json"))).files;
    const benchFile = listed.find((f: { path: string }) => f.path === "bench.json");
    assert.equal(benchFile.deterministic, false, "speeds are run-specific");
    const t = table(bench.rows);
    assert.match(t.split("\n")[2], /^\s+1\s/);
    assert.match(t, /yes$/m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bench-onnx refuses a reward model and over-long generations", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bench-onnx-bad-" });
  try {
    const rm = toHfConfigJson(
      tinyTestConfig({ architecture: "LlamaForSequenceClassification", numLabels: 1 }),
    );
    const a = await runBench(dir, { kind: "bench-onnx", model: { synthetic: rm } });
    assert.equal(a.status, "failed");
    assert.match(a.error ?? "", /bench-onnx needs a LlamaForCausalLM/);
    const b = await runBench(dir, {
      kind: "bench-onnx",
      model: { synthetic: toHfConfigJson(tinyTestConfig()) },
      promptLen: 120,
      newTokens: 16,
    });
    assert.equal(b.status, "failed");
    assert.match(b.error ?? "", /promptLen \+ newTokens = 136 exceeds .* 128/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
