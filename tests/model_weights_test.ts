import assert from "node:assert/strict";
import { getGpu } from "../gpu/device.ts";
import { createBuffer, readF32 } from "../gpu/buffers.ts";
import { Recorder } from "../gpu/recorder.ts";
import { fillConst, fillNormal, normalAt } from "../gpu/init.ts";
import { expectedTensors, loadLlamaConfig } from "../lib/model/config.ts";
import { openCheckpoint } from "../lib/model/safetensors/checkpoint_folder.ts";
import { bf16ToF32, f32ToBf16 } from "../lib/model/safetensors/dtype.ts";
import { ModelFormatError } from "../lib/model/safetensors/format.ts";
import { readTensorF32 } from "../lib/model/safetensors/read.ts";
import { tensorSeed, tinyTestConfig, writeRandomModel } from "../lib/model/random_model.ts";
import {
  loadModelDir,
  loadWeights,
  readWeightsToHost,
  saveWeights,
  syntheticWeights,
} from "../lib/model/weights.ts";

Deno.test("fillNormal matches its TypeScript reference; fillConst fills", async () => {
  const gpu = await getGpu();
  const n = 5000;
  const buf = createBuffer(gpu, n * 4, "x");
  const c = createBuffer(gpu, 40, "c");
  const rec = new Recorder(gpu);
  fillNormal(rec, buf, n, 12345, 0.5, 2);
  fillConst(rec, c, 9, -3.5);
  await rec.submit();
  const got = await readF32(gpu, buf, n);
  let sum = 0, sq = 0;
  for (let i = 0; i < n; i++) {
    const want = 2 + 0.5 * normalAt(12345, i);
    assert.ok(Math.abs(got[i] - want) < 1e-4, `${i}: ${got[i]} vs ${want}`);
    sum += got[i];
    sq += (got[i] - 2) ** 2;
  }
  assert.ok(Math.abs(sum / n - 2) < 0.03, `mean ${sum / n}`);
  assert.ok(Math.abs(Math.sqrt(sq / n) - 0.5) < 0.03, `std ${Math.sqrt(sq / n)}`);
  assert.deepEqual(Array.from(await readF32(gpu, c, 10)), [...Array(9).fill(-3.5), 0]);
});

Deno.test("weights uploaded to the GPU read back equal to the files", async () => {
  const gpu = await getGpu();
  const dir = await Deno.makeTempDir();
  for (const [dtype, shards, tie] of [["BF16", 3, false], ["F32", 1, true]] as const) {
    const config = tinyTestConfig({ tieWordEmbeddings: tie });
    await writeRandomModel(dir, config, { dtype, shards, seed: 11 });
    const progress: number[] = [];
    const { config: loaded, weights } = await loadModelDir(
      gpu,
      dir,
      (p) => progress.push(p.doneBytes / p.totalBytes),
    );
    assert.deepEqual(loaded, { ...config, torchDtype: dtype === "F32" ? "float32" : "bfloat16" });
    // Small chunks and flushes: every tensor arrives in pieces written at offsets.
    const chunked = await readWeightsToHost(
      gpu,
      await loadWeights(gpu, dir, config, undefined, { chunkBytes: 100, flushBytes: 1000 }),
    );
    assert.equal(progress.at(-1), 1);
    assert.equal(weights.has("lm_head.weight"), !tie);
    assert.deepEqual([...weights.keys()], [...expectedTensors(config).keys()]);
    const host = await readWeightsToHost(gpu, weights);
    const ckpt = await openCheckpoint(dir);
    for (const [name, data] of host) {
      const { file } = ckpt.tensors.get(name)!;
      assert.deepEqual(data, await readTensorF32(file, name), name);
      assert.deepEqual(chunked.get(name), data, name);
    }
    for (const b of weights.values()) b.destroy();
    await Deno.remove(dir, { recursive: true });
  }
  // A config the files do not match is refused before anything is uploaded.
  const config = tinyTestConfig();
  await writeRandomModel(dir, config, { dtype: "F16", seed: 1 });
  await assert.rejects(
    loadWeights(gpu, dir, { ...config, hiddenSize: 16, headDim: 4 }),
    (e: Error) => e instanceof ModelFormatError && e.message.includes("model.norm.weight"),
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("synthetic weights are deterministic for a seed; norms are ones", async () => {
  const gpu = await getGpu();
  const config = tinyTestConfig();
  const a = await readWeightsToHost(gpu, syntheticWeights(gpu, config, 5));
  const b = await readWeightsToHost(gpu, syntheticWeights(gpu, config, 5));
  const c = await readWeightsToHost(gpu, syntheticWeights(gpu, config, 6));
  assert.deepEqual([...a.keys()], [...expectedTensors(config).keys()]);
  for (const [name, x] of a) {
    assert.equal(x.length, expectedTensors(config).get(name)!.reduce((p, q) => p * q, 1));
    assert.deepEqual(x, b.get(name), name);
    if (name.endsWith("norm.weight")) {
      assert.ok(x.every((v) => v === 1), name);
      continue;
    }
    assert.notDeepEqual(x, c.get(name), name);
    const s = tensorSeed(5, name);
    for (let i = 0; i < x.length; i += 37) {
      assert.ok(Math.abs(x[i] - 0.02 * normalAt(s, i)) < 1e-6, `${name}[${i}]`);
    }
  }
  // Different tensors get different streams.
  assert.notDeepEqual(
    a.get("model.layers.0.mlp.gate_proj.weight"),
    a.get("model.layers.0.mlp.up_proj.weight"),
  );
});

Deno.test("saveWeights writes an HF checkpoint that loads back exactly", async () => {
  const gpu = await getGpu();
  const config = tinyTestConfig({
    architecture: "LlamaForSequenceClassification",
    padTokenId: 0,
  });
  const weights = syntheticWeights(gpu, config, 9);
  assert.ok(weights.has("score.weight") && !weights.has("lm_head.weight"));
  const host = await readWeightsToHost(gpu, weights, config);
  const dir = await Deno.makeTempDir();
  // A stale shard index is removed so loaders see the new single file.
  await Deno.writeTextFile(`${dir}/model.safetensors.index.json`, "{}");
  await saveWeights(dir, config, host, "F32");
  assert.deepEqual(await loadLlamaConfig(dir), config);
  const back = await readWeightsToHost(gpu, await loadWeights(gpu, dir, config));
  for (const [name, x] of host) assert.deepEqual(back.get(name), x, name);
  await saveWeights(dir, config, host, "BF16");
  assert.equal((await loadLlamaConfig(dir)).torchDtype, "bfloat16");
  const ckpt = await openCheckpoint(dir);
  const name = "model.layers.1.self_attn.q_proj.weight";
  assert.deepEqual(
    await readTensorF32(ckpt.tensors.get(name)!.file, name),
    bf16ToF32(f32ToBf16(host.get(name)!)),
  );
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
    "config.json",
    "model.safetensors",
  ]);
  // Missing, misshapen and foreign tensors are refused by name.
  const missing = new Map(host);
  missing.delete("model.norm.weight");
  await assert.rejects(saveWeights(dir, config, missing, "F32"), /model\.norm\.weight is missing/);
  const short = new Map(host).set("score.weight", new Float32Array(3));
  await assert.rejects(saveWeights(dir, config, short, "F32"), /score\.weight has 3 values/);
  const extra = new Map(host).set("lm_head.weight", new Float32Array(3));
  await assert.rejects(saveWeights(dir, config, extra, "F32"), /lm_head\.weight is not part/);
  for (const b of weights.values()) b.destroy();
  await Deno.remove(dir, { recursive: true });
});
