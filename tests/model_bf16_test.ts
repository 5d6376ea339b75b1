import assert from "node:assert/strict";
import { getGpu } from "../gpu/device.ts";
import { Recorder } from "../gpu/recorder.ts";
import { createBuffer } from "../gpu/buffers.ts";
import { isNormWeight, type LlamaConfig } from "../lib/model/config.ts";
import { tinyTestConfig, writeRandomModel } from "../lib/model/random_model.ts";
import { LlamaModel } from "../lib/model/llama.ts";
import { ForwardPass } from "../lib/model/forward.ts";
import { generate } from "../lib/model/generate.ts";
import { isPackedBf16, loadWeights, readWeightsToHost } from "../lib/model/weights.ts";
import { bf16ToF32, f32ToBf16 } from "../lib/model/safetensors/dtype.ts";
import { type Dtype } from "../lib/model/safetensors/format.ts";
import { trainableParams } from "../lib/train/optimizer.ts";
import { someTokens } from "./reference/llama_ref.ts";

/** Writes a random checkpoint of `config` in `dtype` to a temp dir (std 0.3: peaked outputs). */
async function checkpoint(config: LlamaConfig, dtype: Dtype, seed: number): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "model_bf16_" });
  await writeRandomModel(dir, config, { dtype, seed, std: 0.3 });
  return dir;
}

const bitsOf = (x: ArrayBuffer) => Array.from(new Uint32Array(x));

/** Log-probs and full logits of one padded batch, read back as raw bits. */
async function logprobsAndLogits(model: LlamaModel, tokens: Uint32Array, B: number, S: number) {
  const targets = tokens.map((_t, i) => (i % S === S - 1 ? 0 : tokens[i + 1]));
  const rec = new Recorder(model.gpu);
  const { logp, entropy } = new ForwardPass(model, B, S).forwardLogprobs(rec, tokens, targets, {
    entropy: true,
  });
  const logits = new ForwardPass(model, B, S).forwardLogits(rec, tokens);
  const reads = [rec.read(logp), rec.read(entropy!), rec.read(logits)];
  await rec.submit();
  return (await Promise.all(reads)).map(bitsOf);
}

for (const tie of [false, true]) {
  Deno.test(`a BF16 checkpoint stored as bf16 computes the same bits as loaded as f32 (tied ${tie})`, async () => {
    const gpu = await getGpu();
    const config = tinyTestConfig({ tieWordEmbeddings: tie });
    const dir = await checkpoint(config, "BF16", 21);
    try {
      const f32 = await LlamaModel.load(gpu, dir);
      const bf16 = await LlamaModel.load(gpu, dir, { storage: "bf16" });
      const auto = await LlamaModel.load(gpu, dir, { storage: "auto" });
      assert.equal(f32.storage, "f32");
      assert.equal(bf16.storage, "bf16");
      assert.equal(auto.storage, "bf16", "auto: every matrix is BF16");
      for (const name of bf16.paramNames()) {
        assert.equal(bf16.isBf16(name), !isNormWeight(name), name);
        const n = bf16.paramNumel(name);
        if (bf16.isBf16(name)) assert.ok(bf16.w(name).size < n * 4, `${name} is 16-bit`);
      }
      // Same weights once widened.
      const [hf, hb] = [
        await readWeightsToHost(gpu, f32.weights),
        await readWeightsToHost(gpu, bf16.weights),
      ];
      for (const [name, data] of hf) assert.deepEqual(hb.get(name), data, name);

      const B = 3, S = 9, V = config.vocabSize;
      const tokens = Uint32Array.from(someTokens(B * S, V, 5));
      const [lpF, entF, logitsF] = await logprobsAndLogits(f32, tokens, B, S);
      const [lpB, entB, logitsB] = await logprobsAndLogits(bf16, tokens, B, S);
      assert.deepEqual(lpB, lpF, "log-probs");
      assert.deepEqual(entB, entF, "entropies");
      assert.deepEqual(logitsB, logitsF, "logits");

      const prompts = [someTokens(3, V, 41), someTokens(6, V, 42)];
      for (const temperature of [0, 0.9]) {
        const opts = {
          maxNewTokens: 5,
          temperature,
          topP: 0.95,
          seed: 3,
          stream: 1,
          stopIds: [],
          readbackEvery: 2,
        };
        const gF = await generate(f32, prompts, opts);
        const gB = await generate(bf16, prompts, opts);
        assert.deepEqual(gB.tokens, gF.tokens, `tokens at temperature ${temperature}`);
        assert.deepEqual(gB.logprobs, gF.logprobs, `log-probs at temperature ${temperature}`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("a BF16 reward model stored as bf16 gives the same scores", async () => {
  const gpu = await getGpu();
  const config = tinyTestConfig({ architecture: "LlamaForSequenceClassification", numLabels: 1 });
  const dir = await checkpoint(config, "BF16", 22);
  try {
    const scores = async (model: LlamaModel) => {
      const rec = new Recorder(model.gpu);
      const pass = new ForwardPass(model, 2, 6);
      const out = pass.forwardScores(rec, Uint32Array.from(someTokens(12, 64, 8)), [3, 11]);
      const p = rec.read(out);
      await rec.submit();
      return bitsOf(await p);
    };
    const bf16 = await LlamaModel.load(gpu, dir, { storage: "bf16" });
    assert.ok(bf16.isBf16("score.weight"));
    assert.deepEqual(await scores(bf16), await scores(await LlamaModel.load(gpu, dir)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bf16 storage: frozen, refuses other dtypes unless rounding is asked for", async () => {
  const gpu = await getGpu();
  const config = tinyTestConfig();
  const dir = await checkpoint(config, "F32", 23);
  try {
    const f32 = await LlamaModel.load(gpu, dir, { storage: "auto" });
    assert.equal(f32.storage, "f32", "auto keeps an F32 checkpoint in f32");
    await assert.rejects(
      LlamaModel.load(gpu, dir, { storage: "bf16" }),
      /model\.safetensors: tensor model\.embed_tokens\.weight is F32; storage "bf16" .*roundToBf16/,
    );
    const rounded = await LlamaModel.load(gpu, dir, { storage: "bf16", roundToBf16: true });
    const hf = await readWeightsToHost(gpu, f32.weights);
    const hr = await readWeightsToHost(gpu, rounded.weights);
    for (const [name, data] of hf) {
      const want = isNormWeight(name) ? data : bf16ToF32(f32ToBf16(data));
      assert.deepEqual(hr.get(name), want, name);
    }
    // Small odd-sized chunks land at the right words too.
    const chunked = await readWeightsToHost(
      gpu,
      await loadWeights(gpu, dir, config, undefined, {
        storage: "bf16",
        roundToBf16: true,
        chunkBytes: 37,
        flushBytes: 500,
      }),
    );
    for (const [name, data] of hr) assert.deepEqual(chunked.get(name), data, name);

    assert.throws(() => rounded.zeroGrads(), /zeroGrads: this model's weights are stored as BF16/);
    const pass = new ForwardPass(rounded, 1, 4);
    const rec = new Recorder(gpu);
    const ids = Uint32Array.from([1, 2, 3, 4]);
    pass.forwardLogprobs(rec, ids, ids);
    assert.throws(
      () => pass.backward(rec, createBuffer(gpu, 16, "dlogp"), f32.zeroGrads()),
      /backward: this model's weights are stored as BF16 \(a frozen copy: forward only\)/,
    );
    assert.ok(!isPackedBf16(f32.w("lm_head.weight")));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ForwardPass reuses its token-id upload buffers; two forwards in one submission stay apart", async () => {
  const gpu = await getGpu();
  const config = tinyTestConfig();
  const dir = await checkpoint(config, "BF16", 24);
  try {
    const model = await LlamaModel.load(gpu, dir, { storage: "bf16" });
    const pass = new ForwardPass(model, 1, 5);
    const a = Uint32Array.from(someTokens(5, 64, 1)), b = Uint32Array.from(someTokens(5, 64, 2));
    const once = async (ids: Uint32Array) => {
      const rec = new Recorder(gpu);
      const p = rec.read(pass.forwardLogprobs(rec, ids, ids).logp);
      await rec.submit();
      return bitsOf(await p);
    };
    const ra = await once(a), rb = await once(b);
    for (let i = 0; i < 5; i++) await once(i % 2 ? a : b);
    assert.equal(pass.idUploadBuffers, 2, "tokens and targets: two buffers, reused");
    assert.notDeepEqual(ra, rb);
    // Both forwards recorded before one submission: each reads its own ids.
    const rec = new Recorder(gpu);
    const pa = rec.read(pass.forwardLogprobs(rec, a, a).logp);
    const pb = rec.read(pass.forwardLogprobs(rec, b, b).logp);
    await rec.submit();
    assert.deepEqual(bitsOf(await pa), ra);
    assert.deepEqual(bitsOf(await pb), rb);
    assert.equal(pass.idUploadBuffers, 4);
    pass.destroy();
    assert.equal(pass.idUploadBuffers, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the optimizer refuses a BF16-stored model's weights", async () => {
  const gpu = await getGpu();
  const dir = await checkpoint(tinyTestConfig(), "BF16", 25);
  try {
    const model = await LlamaModel.load(gpu, dir, { storage: "bf16" });
    assert.throws(
      () => trainableParams(model),
      /trainableParams: model\.embed_tokens\.weight is stored as BF16 \(a frozen model/,
    );
    assert.equal(
      trainableParams(await LlamaModel.load(gpu, dir)).length,
      model.paramNames().length,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("synthetic bf16 weights are the f32 synthetic weights rounded to BF16", async () => {
  const gpu = await getGpu();
  const config = tinyTestConfig({ tieWordEmbeddings: true });
  const f32 = LlamaModel.synthetic(gpu, config, 7);
  const bf16 = LlamaModel.synthetic(gpu, config, 7, "bf16");
  assert.equal(bf16.storage, "bf16");
  const hf = await readWeightsToHost(gpu, f32.weights);
  const hb = await readWeightsToHost(gpu, bf16.weights);
  for (const [name, data] of hf) {
    assert.equal(bf16.isBf16(name), !isNormWeight(name), name);
    const want = isNormWeight(name) ? data : bf16ToF32(f32ToBf16(data));
    assert.deepEqual(hb.get(name), want, name);
  }
});
