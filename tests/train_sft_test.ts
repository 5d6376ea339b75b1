import assert from "node:assert/strict";
import { join } from "node:path";
import { loadManifest } from "../lib/manifest/load.ts";
import { runExperiment } from "../lib/runner/run.ts";
import { tinyTestConfig, writeRandomModel } from "../lib/model/random_model.ts";
import { TINY_VOCAB_SIZE, writeTinyTokenizer } from "../lib/tinyworld/tokenizer.ts";
import { hashFile } from "../lib/util/hash_file.ts";
import { sftKind } from "../lib/train/sft.ts";

const EXAMPLES = [
  ["abc", "cba"],
  ["hello", "olleh"],
  ["xy", "yx"],
  ["dog", "god"],
].map(([q, a]) =>
  JSON.stringify({ messages: [{ role: "user", content: q }, { role: "assistant", content: a }] })
).join("\n");

async function setup(dir: string, steps: number, extra: Record<string, unknown> = {}) {
  const model = join(dir, "model");
  await writeRandomModel(model, tinyTestConfig({ vocabSize: TINY_VOCAB_SIZE }), {
    dtype: "F32",
    seed: 1,
  });
  await writeTinyTokenizer(model);
  await Deno.writeTextFile(join(dir, "data.jsonl"), EXAMPLES + "\n");
  const manifest = join(dir, "sft-overfit.jsonc");
  await Deno.writeTextFile(
    manifest,
    JSON.stringify({
      kind: "sft",
      description: "over-fit four reversal examples",
      seed: 5,
      model,
      data: { jsonl: join(dir, "data.jsonl") },
      steps,
      batchSize: 2,
      gradAccum: 2,
      seqLen: 20,
      optimizer: { lr: 1e-2, schedule: "constant", maxGradNorm: 1 },
      checkpointEvery: 10,
      ...extra,
    }),
  );
  return loadManifest(manifest, { experimentsDir: dir, kinds: [sftKind] });
}

const lines = async (p: string) =>
  (await Deno.readTextFile(p)).split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));

Deno.test("sft over-fits a small batch end to end, and resumes bit-exactly", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sft-test-" });
  try {
    const steps = 40;
    const manifest = await setup(dir, steps);
    // root: the temp dir, so edits to the shared checkout during the test keep the run id.
    const common = { manifest, kinds: [sftKind], root: dir, resultsDir: dir };

    // Uninterrupted run.
    const a = await runExperiment({ ...common, outDir: join(dir, "a") });
    assert.equal(a.status, "completed", a.error);
    const ma = await lines(join(a.bundleDir, "metrics.jsonl"));
    assert.equal(ma.length, steps);
    const first = ma[0].loss, last = ma[steps - 1].loss;
    console.log(`loss ${first.toFixed(3)} -> ${last.toFixed(4)}`);
    assert.ok(first > 3, `first loss ${first} should be near ln(vocab)`);
    assert.ok(last < 0.15, `loss should fall towards 0, got ${last}`);
    for (const k of ["gradNorm", "lr", "tokens"]) assert.ok(ma[0][k] > 0, k);
    const timings = await lines(join(a.bundleDir, "timings.jsonl"));
    assert.ok(timings[0].tokensPerSecond > 0);
    for (const s of [10, 20, 30, 40]) {
      await Deno.stat(join(a.bundleDir, "checkpoints", `step-${s}`, "SHA256SUMS"));
    }

    // Interrupted after its step-20 checkpoint, then resumed.
    const ctl = new AbortController();
    const bDir = join(dir, "b");
    const watch = setInterval(async () => {
      try {
        await Deno.stat(join(bDir, "checkpoints", "step-20", "SHA256SUMS"));
        ctl.abort(new DOMException("test interrupt", "AbortError"));
      } catch { /* not yet */ }
    }, 20);
    const b1 = await runExperiment({ ...common, outDir: bDir, signal: ctl.signal });
    clearInterval(watch);
    assert.equal(b1.status, "interrupted", b1.error);
    const b2 = await runExperiment({ ...common, outDir: bDir, resume: true });
    assert.equal(b2.status, "completed", b2.error);
    assert.equal(
      await Deno.readTextFile(join(bDir, "metrics.jsonl")),
      await Deno.readTextFile(join(a.bundleDir, "metrics.jsonl")),
    );
    for (const f of ["model.safetensors", "optimizer.safetensors", "state.json"]) {
      const p = (d: string) => join(d, "checkpoints", `step-${steps}`, f);
      assert.equal((await hashFile(p(bDir))).sha256, (await hashFile(p(a.bundleDir))).sha256, f);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sft with precision bf16 trains through the compute copies and resumes bit-exactly", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sft-bf16-test-" });
  try {
    const steps = 20;
    const manifest = await setup(dir, steps, { precision: { weights: "bf16" } });
    const common = { manifest, kinds: [sftKind], root: dir, resultsDir: dir };
    const a = await runExperiment({ ...common, outDir: join(dir, "a") });
    assert.equal(a.status, "completed", a.error);
    const ma = await lines(join(a.bundleDir, "metrics.jsonl"));
    const first = ma[0].loss, last = ma[steps - 1].loss;
    console.log(`bf16: loss ${first.toFixed(3)} -> ${last.toFixed(4)}`);
    assert.ok(first > 3 && last < 1, `loss ${first} -> ${last}`);
    // The same first step in f32 computes another loss: the bf16 copies were in use.
    const f32 = await runExperiment({
      manifest: await setup(dir, 1),
      kinds: [sftKind],
      root: dir,
      resultsDir: dir,
      outDir: join(dir, "f32"),
    });
    assert.equal(f32.status, "completed", f32.error);
    const f32First = (await lines(join(f32.bundleDir, "metrics.jsonl")))[0].loss;
    assert.notEqual(f32First, first);
    assert.ok(Math.abs(f32First - first) < 1e-2 * first, `f32 ${f32First} vs bf16 ${first}`);

    // Interrupted after its step-10 checkpoint, then resumed: the masters re-pack exactly.
    const ctl = new AbortController();
    const bDir = join(dir, "b");
    const watch = setInterval(async () => {
      try {
        await Deno.stat(join(bDir, "checkpoints", "step-10", "SHA256SUMS"));
        ctl.abort(new DOMException("test interrupt", "AbortError"));
      } catch { /* not yet */ }
    }, 20);
    const b1 = await runExperiment({ ...common, outDir: bDir, signal: ctl.signal });
    clearInterval(watch);
    assert.equal(b1.status, "interrupted", b1.error);
    const b2 = await runExperiment({ ...common, outDir: bDir, resume: true });
    assert.equal(b2.status, "completed", b2.error);
    assert.equal(
      await Deno.readTextFile(join(bDir, "metrics.jsonl")),
      await Deno.readTextFile(join(a.bundleDir, "metrics.jsonl")),
    );
    for (const f of ["model.safetensors", "optimizer.safetensors"]) {
      const p = (d: string) => join(d, "checkpoints", `step-${steps}`, f);
      assert.equal((await hashFile(p(bDir))).sha256, (await hashFile(p(a.bundleDir))).sha256, f);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sft names the file and line of a bad dataset", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sft-bad-" });
  try {
    const manifest = await setup(dir, 1);
    await Deno.writeTextFile(join(dir, "data.jsonl"), EXAMPLES + '\n{"messages": []}\n');
    const r = await runExperiment({
      manifest,
      kinds: [sftKind],
      root: dir,
      resultsDir: dir,
      outDir: join(dir, "out"),
    });
    assert.equal(r.status, "failed");
    assert.match(r.error ?? "", /data\.jsonl:5: "messages" must be a non-empty array/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
