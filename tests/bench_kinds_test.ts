import assert from "node:assert/strict";
import { join } from "node:path";
import { loadManifest } from "../lib/manifest/load.ts";
import { runExperiment } from "../lib/runner/run.ts";
import { toHfConfigJson } from "../lib/model/config.ts";
import { tinyTestConfig } from "../lib/model/random_model.ts";
import { benchModelKind } from "../lib/bench/bench_model.ts";
import { benchTrainKind } from "../lib/bench/bench_train.ts";
import { benchMatmulKind } from "../lib/bench/bench_matmul.ts";
import { benchAttentionKind } from "../lib/bench/bench_attention.ts";
import { adapterPeaks, KNOWN_ADAPTERS } from "../lib/bench/adapter_peaks.ts";
import { decodeBytesPerStep } from "../lib/bench/model_costs.ts";
import { writeReport } from "../lib/report/report.ts";

const kinds = [benchModelKind, benchTrainKind, benchMatmulKind, benchAttentionKind];

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
    assert.equal(m.result.pipelined, false); // the default on a CPU adapter
    assert.equal(m.result.pipelining, undefined);
    const both = await runBench(dir, "bm-both", {
      kind: "bench-model",
      config,
      batch: 2,
      promptLen: 8,
      newTokens: 6,
      readbackEvery: 2,
      pipelined: "both",
      warmup: 0,
      repeats: 1,
    });
    const cmp = both.result.pipelining;
    assert.equal(both.result.pipelined, true);
    assert.ok(cmp.offDecodeTokensPerSecond > 0 && cmp.onDecodeTokensPerSecond > 0);
    assert.equal(cmp.ratio, cmp.onDecodeTokensPerSecond / cmp.offDecodeTokensPerSecond);
    assert.equal(both.result.table.length, 3); // decode pipelined, not pipelined; prefill

    // Precision bf16: generation reads the packed compute copies; the ceiling counts 2 B/weight.
    const mb = await runBench(dir, "bm-bf16", {
      kind: "bench-model",
      config,
      batch: 2,
      promptLen: 8,
      newTokens: 6,
      readbackEvery: 4,
      warmup: 1,
      repeats: 1,
      precision: { weights: "bf16" },
      peaks: { memoryGBps: 100, f32Gflops: null },
    });
    assert.ok(mb.result.decodeTokensPerSecond > 0);
    assert.match(mb.result.table[0].case, /bf16 weights/);
    const c = tinyTestConfig();
    const bytes = (w: number) => decodeBytesPerStep(c, 2, 8 + 6 / 2, w);
    assert.equal(mb.result.decodeCeilingTokensPerSecond, 2 * 100e9 / bytes(2));

    const cfgFile = join(dir, "config.json");
    await Deno.writeTextFile(cfgFile, JSON.stringify(config));
    const t = await runBench(dir, "bt", {
      kind: "bench-train",
      config: cfgFile,
      batch: 2,
      seqLen: 8,
      warmup: 1,
      // Medians of 3: one timing of a few milliseconds flips under a loaded machine's noise.
      repeats: 3,
    });
    assert.equal(t.result.tokensPerStep, 16);
    assert.ok(t.result.trainTokensPerSecond > 0 && t.result.forwardTokensPerSecond > 0);
    // The ratio is what the figures say (no timing bound: a loaded machine makes any flaky).
    assert.equal(t.result.trainToForwardRatio, t.result.seconds.forward / t.result.seconds.train);
    const timings = await Deno.readTextFile(join(t.dir, "timings.jsonl"));
    assert.equal(timings.trim().split("\n").length, 3);
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

Deno.test("bench-matmul times engine and tiled kernels, relates them to the peaks, checks bits", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bench-mm-" });
  try {
    const m = await runBench(dir, "bmm", {
      kind: "bench-matmul",
      shapes: [
        { name: "decode", op: "forward", M: 2, K: 64, N: 40 },
        { name: "train", op: "gradWeight", M: 70, K: 12, N: 9 },
        { name: "train", op: "gradInputBf16", M: 70, K: 12, N: 9 },
      ],
      targetMs: 5,
      repeats: 1,
      bitCheck: { K: 64, N: 8, rows: [1, 5, 70] },
      peaks: { f32Gflops: 1000, memoryGBps: 50 },
    });
    const r = m.result;
    assert.equal(r.peaks.source, "manifest");
    assert.equal(r.cases.length, 6); // 3 shapes x (engine, tiled)
    for (const c of r.cases) {
      assert.ok(c.msPerOp > 0 && c.gflops > 0 && c.gbps > 0, JSON.stringify(c));
      assert.ok(Math.abs(c.fractionOfF32Peak - c.gflops / 1000) < 1e-12);
      assert.ok(Math.abs(c.fractionOfBandwidth - c.gbps / 50) < 1e-12);
    }
    assert.equal(r.engineSpeedup.length, 3);
    assert.equal(r.table.length, 12); // GFLOP/s and GB/s per case
    const bits = JSON.parse(await Deno.readTextFile(join(m.dir, "bits.json")));
    assert.deepEqual(bits.checks.map((c: { op: string }) => c.op), [
      "forward",
      "forwardBf16",
      "gradInput",
      "gradInputBf16",
    ]);
    for (const c of bits.checks) {
      assert.deepEqual(c.rows.map((x: { M: number }) => x.M), [1, 5]);
      assert.ok(c.rows.every((x: { mismatches: number }) => x.mismatches === 0));
      assert.equal(c.rerunMismatches, 0);
      assert.equal(c.tiledKernelMismatches, 0);
    }
    const manifest = JSON.parse(await Deno.readTextFile(join(m.dir, "bundle.json")));
    const listed = (p: string) => manifest.files.find((f: { path: string }) => f.path === p);
    assert.equal(listed("bits.json").deterministic, true);
    assert.equal(listed("bench.json").deterministic, false);
    // The report draws the table: one figure per unit and one of the fractions.
    const rep = await writeReport([m.dir], { outDir: join(dir, "report") });
    const names = rep.pngs.map((p) => p.split("/").pop());
    for (const f of ["bench-GFLOP_s.png", "bench-GB_s.png", "bench-fraction-of-limits.png"]) {
      assert.ok(names.includes(f), `${f} in ${names}`);
    }
    const html = await Deno.readTextFile(rep.htmlPath);
    assert.match(html, /Benchmark \(bench\.json\)/);
    assert.match(html, /f32 peak 1000 GFLOP\/s/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bench-attention times blocked and row-wise kernels per pass and checks their bits", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bench-att-" });
  try {
    const sh = { nHeads: 6, nKv: 2, hd: 20 };
    const m = await runBench(dir, "batt", {
      kind: "bench-attention",
      shapes: [
        { name: "t", pass: "prefill", B: 2, S: 70, ...sh },
        { name: "t", pass: "decode", B: 3, S: 70, ...sh },
        {
          name: "t",
          pass: "backward",
          B: 1,
          S: 70,
          ...sh,
          kernels: ["blocked", "rowwise"],
        },
      ],
      kernels: ["blocked", "rowwise", "serial"],
      targetMs: 5,
      repeats: 1,
      peaks: { f32Gflops: 1000, memoryGBps: 50 },
    });
    const r = m.result;
    assert.equal(r.cases.length, 8); // 2 passes x 3 kernels, the backward (its own list) x 2
    assert.ok(r.cases.every((c: Record<string, unknown>) => !("kernels" in c)));
    for (const c of r.cases) {
      assert.ok(c.msPerOp > 0 && c.gflops > 0 && c.gbps > 0, JSON.stringify(c));
      assert.ok(Math.abs(c.fractionOfF32Peak - c.gflops / 1000) < 1e-12);
    }
    assert.equal(r.blockedSpeedup.length, 3);
    assert.equal(r.table.length, 16);
    const bits = JSON.parse(await Deno.readTextFile(join(m.dir, "bits.json")));
    assert.deepEqual(bits.checks.map((c: { pass: string }) => c.pass), [
      "prefill",
      "decode",
      "backward",
    ]);
    // out + lse words (prefill 140 rows, decode 3 rows), dq + dk + dv (backward).
    assert.deepEqual(bits.checks.map((c: { words: number }) => c.words), [
      140 * 6 * 21,
      3 * 6 * 21,
      70 * 6 * 20 + 2 * 70 * 2 * 20,
    ]);
    for (const c of bits.checks) {
      assert.equal(c.rowwiseMismatches, 0);
      assert.equal(c.rerunMismatches, 0);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("adapter peaks: the manifest, the table of known adapters, or unknown", () => {
  const none = { f32Gflops: null, memoryGBps: null };
  const h200 = adapterPeaks({ description: "NVIDIA H200", device: "" }, none);
  assert.deepEqual(h200, {
    f32Gflops: 67_000,
    memoryGBps: 4_800,
    source: "table: NVIDIA H200 (SXM)",
  });
  const pcie = adapterPeaks({ description: "NVIDIA H100 PCIe", device: "" }, none);
  assert.equal(pcie.memoryGBps, 2_000);
  const sxm = adapterPeaks({ description: "NVIDIA H100 80GB HBM3", device: "" }, none);
  assert.equal(sxm.memoryGBps, 3_350);
  const mixed = adapterPeaks({ description: "NVIDIA H100 80GB HBM3", device: "" }, {
    f32Gflops: 1,
    memoryGBps: null,
  });
  assert.deepEqual(mixed, {
    f32Gflops: 1,
    memoryGBps: 3_350,
    source: "manifest + table: NVIDIA H100 (SXM)",
  });
  const cpu = adapterPeaks({ description: "llvmpipe (LLVM 15.0.6, 256 bits)", device: "" }, none);
  assert.deepEqual(cpu, { f32Gflops: null, memoryGBps: null, source: "unknown" });
  // Every table entry is found by its own name.
  for (const a of KNOWN_ADAPTERS) {
    assert.equal(
      adapterPeaks({ description: a.name, device: "" }, none).source,
      `table: ${a.name}`,
    );
  }
});
