import assert from "node:assert/strict";
import { join } from "node:path";
import { loadManifest } from "../lib/manifest/load.ts";
import { runExperiment } from "../lib/runner/run.ts";
import { toHfConfigJson } from "../lib/model/config.ts";
import { tinyTestConfig } from "../lib/model/random_model.ts";
import { benchModelKind } from "../lib/bench/bench_model.ts";
import { benchTrainKind } from "../lib/bench/bench_train.ts";

const kinds = [benchModelKind, benchTrainKind];

async function runBench(dir: string, name: string, body: Record<string, unknown>) {
  const file = join(dir, `${name}.jsonc`);
  await Deno.writeTextFile(file, JSON.stringify({ description: "tiny bench", ...body }));
  const manifest = loadManifest(file, { experimentsDir: dir, kinds });
  const r = await runExperiment({ manifest, kinds, root: dir, resultsDir: dir });
  assert.equal(r.status, "completed", r.error);
  const result = JSON.parse(await Deno.readTextFile(join(r.bundleDir, "bench.json")));
  console.log(name, JSON.stringify(result));
  return { result, dir: r.bundleDir };
}

Deno.test("bench-model and bench-train write their figures (inline and file configs)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bench-test-" });
  try {
    const config = toHfConfigJson(tinyTestConfig());
    const m = await runBench(dir, "bm", {
      kind: "bench-model",
      config,
      batch: 2,
      promptLen: 8,
      newTokens: 6,
      readbackEvery: 4,
      warmup: 1,
      repeats: 1,
    });
    for (const k of ["prefillTokensPerSecond", "decodeTokensPerSecond"]) {
      assert.ok(m.result[k] > 0 && Number.isFinite(m.result[k]), k);
    }
    assert.ok(m.result.dispatchesPerDecodedToken > 0);
    // 5 decode steps read back every 4 steps plus the prefill segment: at least 2 readbacks.
    assert.ok(m.result.readbacksPerSequence >= 2, `${m.result.readbacksPerSequence}`);

    const cfgFile = join(dir, "config.json");
    await Deno.writeTextFile(cfgFile, JSON.stringify(config));
    const t = await runBench(dir, "bt", {
      kind: "bench-train",
      config: cfgFile,
      batch: 2,
      seqLen: 8,
      warmup: 1,
      repeats: 1,
    });
    assert.equal(t.result.tokensPerStep, 16);
    assert.ok(t.result.trainTokensPerSecond > 0 && t.result.forwardTokensPerSecond > 0);
    // A training step does a forward and more, so it cannot be faster than a forward.
    assert.ok(t.result.trainToForwardRatio < 1, `${t.result.trainToForwardRatio}`);
    const timings = await Deno.readTextFile(join(t.dir, "timings.jsonl"));
    assert.equal(timings.trim().split("\n").length, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a bad config is refused naming the field", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bench-bad-" });
  try {
    const file = join(dir, "bad.jsonc");
    await Deno.writeTextFile(
      file,
      JSON.stringify({ kind: "bench-train", description: "bad", config: { vocab_size: 0 } }),
    );
    const manifest = loadManifest(file, { experimentsDir: dir, kinds });
    const r = await runExperiment({ manifest, kinds, root: dir, resultsDir: dir });
    assert.equal(r.status, "failed");
    assert.match(r.error ?? "", /manifest: config/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
