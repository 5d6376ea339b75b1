import assert from "node:assert/strict";
import { getGpu } from "../gpu/device.ts";
import { readF32 } from "../gpu/buffers.ts";
import { Recorder } from "../gpu/recorder.ts";
import { type LlamaConfig } from "../lib/model/config.ts";
import { tinyTestConfig, writeRandomModel } from "../lib/model/random_model.ts";
import type { Dtype } from "../lib/model/safetensors/format.ts";
import { LlamaModel } from "../lib/model/llama.ts";
import { ForwardPass } from "../lib/model/forward.ts";
import { readModelF64, refLogits, refTokenLogprobs, someTokens } from "./reference/llama_ref.ts";
import { maxAbsDiff } from "./helpers.ts";

const LLAMA3_SCALING = {
  factor: 8,
  lowFreqFactor: 1,
  highFreqFactor: 4,
  // Small on purpose: with head_dim 8 the four frequencies fall in all three bands.
  originalMaxPositionEmbeddings: 64,
};

const CASES: { name: string; config: LlamaConfig; dtype: Dtype; shards: number }[] = [
  { name: "F32, untied, GQA 4/2", config: tinyTestConfig(), dtype: "F32", shards: 1 },
  {
    name: "BF16, tied, llama3 rope scaling",
    config: tinyTestConfig({
      tieWordEmbeddings: true,
      ropeScaling: LLAMA3_SCALING,
      ropeTheta: 500000,
    }),
    dtype: "BF16",
    shards: 1,
  },
  {
    name: "F16, untied, 3 shards, no GQA",
    config: tinyTestConfig({ numKvHeads: 4, numLayers: 3 }),
    dtype: "F16",
    shards: 3,
  },
];

for (const tc of CASES) {
  Deno.test(`logits and log-probs match the f64 reference: ${tc.name}`, async () => {
    const gpu = await getGpu();
    const dir = await Deno.makeTempDir({ prefix: "model_forward_" });
    try {
      await writeRandomModel(dir, tc.config, {
        dtype: tc.dtype,
        shards: tc.shards,
        seed: 7,
        std: 0.3,
      });
      const model = await LlamaModel.load(gpu, dir);
      const ref = await readModelF64(dir);
      const V = tc.config.vocabSize, B = 2, S = 9;
      const seqs = [someTokens(S, V, 1), someTokens(S, V, 2)];
      const tokens = Uint32Array.from(seqs.flat());
      const targets = Uint32Array.from(seqs.flatMap((s) => [...s.slice(1), 0]));
      // Chunk the LM head in 4-row pieces so the chunking path is exercised.
      const pass = new ForwardPass(model, B, S, { headChunkRows: 4 });
      assert.equal(pass.nChunks, 5);
      const rec = new Recorder(gpu);
      const { logp, entropy } = pass.forwardLogprobs(rec, tokens, targets, { entropy: true });
      const pl = rec.read(logp, 0, B * S * 4), pe = rec.read(entropy!, 0, B * S * 4);
      const logitsBuf = new ForwardPass(model, B, S).forwardLogits(rec, tokens);
      const pg = rec.read(logitsBuf, 0, B * S * V * 4);
      await rec.submit();
      const gotLogp = new Float32Array(await pl), gotEnt = new Float32Array(await pe);
      const gotLogits = new Float32Array(await pg);
      for (let b = 0; b < B; b++) {
        const want = refLogits(ref.config, ref.weights, seqs[b]);
        const scale = want.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
        assert.ok(scale > 0.5, `logits too small to test anything (${scale})`);
        const got = gotLogits.subarray(b * S * V, (b + 1) * S * V);
        const d = maxAbsDiff(got, want);
        assert.ok(d <= 1e-3 * scale, `seq ${b}: max |logit diff| ${d} > 1e-3 * ${scale}`);
        const wantLp = refTokenLogprobs(want, V, Array.from(targets.subarray(b * S, b * S + S)));
        const dl = maxAbsDiff(gotLogp.subarray(b * S, b * S + S), wantLp);
        assert.ok(dl <= 1e-3 * scale, `seq ${b}: max |logp diff| ${dl}`);
        for (let t = 0; t < S; t++) {
          const row = want.subarray(t * V, t * V + V);
          const mx = Math.max(...row);
          const z = row.reduce((a, x) => a + Math.exp(x - mx), 0);
          const h = -row.reduce((a, x) => a + Math.exp(x - mx) / z * (x - mx - Math.log(z)), 0);
          assert.ok(Math.abs(gotEnt[b * S + t] - h) <= 1e-3 * scale, `entropy row ${t}`);
        }
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("a sequence's log-probs do not depend on the batch around it (bit for bit)", async () => {
  const gpu = await getGpu();
  const config = tinyTestConfig();
  const model = LlamaModel.synthetic(gpu, config, 3);
  const V = config.vocabSize, S = 6;
  const a = someTokens(S, V, 11), b = someTokens(S, V, 12), c = someTokens(S, V, 13);
  const run = async (seqs: number[][]) => {
    const pass = new ForwardPass(model, seqs.length, S);
    const rec = new Recorder(gpu);
    const { logp } = pass.forwardLogprobs(
      rec,
      Uint32Array.from(seqs.flat()),
      Uint32Array.from(seqs.flatMap((s) => [...s.slice(1), 0])),
    );
    await rec.submit();
    return await readF32(gpu, logp, seqs.length * S);
  };
  const alone = await run([b]);
  const batched = await run([a, b, c]);
  assert.deepEqual(Array.from(batched.subarray(S, 2 * S)), Array.from(alone));
  assert.ok(alone.every(Number.isFinite));
  assert.ok(new Set(alone).size > 1, "log-probs should vary across positions");
});

Deno.test("ForwardPass refuses tokens outside the vocabulary and wrong lengths", async () => {
  const gpu = await getGpu();
  const config = tinyTestConfig();
  const model = LlamaModel.synthetic(gpu, config, 3);
  const pass = new ForwardPass(model, 1, 3);
  const rec = new Recorder(gpu);
  assert.throws(
    () => pass.forwardLogprobs(rec, Uint32Array.of(1, 2, 64), Uint32Array.of(0, 0, 0)),
    /tokens\[2\] = 64 is >= vocab 64/,
  );
  assert.throws(
    () => pass.forwardLogprobs(rec, Uint32Array.of(1, 2), Uint32Array.of(0, 0)),
    /want B\*S = 3/,
  );
});

Deno.test("forwardScores (reward models) equals the reference's score head at the chosen rows", async () => {
  const gpu = await getGpu();
  const config = tinyTestConfig({ architecture: "LlamaForSequenceClassification", numLabels: 1 });
  const dir = await Deno.makeTempDir({ prefix: "model_scores_" });
  try {
    await writeRandomModel(dir, config, { dtype: "F32", seed: 8, std: 0.3 });
    const model = await LlamaModel.load(gpu, dir);
    const ref = await readModelF64(dir);
    // The score head is a [numLabels, D] linear on the final-normed state: the reference's LM
    // head with score.weight in place of lm_head.weight computes exactly that at every row.
    ref.weights.set("lm_head.weight", ref.weights.get("score.weight")!);
    const refCfg = { ...ref.config, tied: false, vocabSize: 1 };
    const S = 5, seqs = [someTokens(3, 64, 51), someTokens(5, 64, 52)];
    const tokens = Uint32Array.from(
      seqs.flatMap((s) => [...s, ...new Array(S - s.length).fill(0)]),
    );
    const rows = [0 * S + 2, 1 * S + 4, 1 * S + 1];
    const pass = new ForwardPass(model, 2, S, { recompute: true, headChunkRows: 1 });
    const rec = new Recorder(gpu);
    const out = pass.forwardScores(rec, tokens, rows);
    await rec.submit();
    const got = await readF32(gpu, out, rows.length);
    const want = [
      refLogits(refCfg, ref.weights, seqs[0])[2],
      refLogits(refCfg, ref.weights, seqs[1])[4],
      refLogits(refCfg, ref.weights, seqs[1])[1],
    ];
    assert.ok(maxAbsDiff(got, want) <= 1e-3 * Math.max(...want.map(Math.abs)), `${got} vs ${want}`);
    const lp = new Recorder(gpu);
    assert.throws(() => pass.forwardLogprobs(lp, tokens, tokens), /needs a LlamaForCausalLM/);
    out.destroy();
    pass.destroy();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
