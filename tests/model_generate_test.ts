import assert from "node:assert/strict";
import { getGpu } from "../gpu/device.ts";
import { createBuffer, uploadBuffer } from "../gpu/buffers.ts";
import { Recorder } from "../gpu/recorder.ts";
import { sample } from "../gpu/sampling.ts";
import { tinyTestConfig, writeRandomModel } from "../lib/model/random_model.ts";
import { LlamaModel } from "../lib/model/llama.ts";
import { ForwardPass } from "../lib/model/forward.ts";
import { choosePipelining, generate, type GenerateOptions } from "../lib/model/generate.ts";
import { someTokens } from "./reference/llama_ref.ts";

const config = tinyTestConfig();
const V = config.vocabSize;
let cached: LlamaModel | null = null;

/** A tiny random model with weights large enough that its distributions are far from uniform. */
async function testModel(): Promise<LlamaModel> {
  if (cached) return cached;
  const dir = await Deno.makeTempDir({ prefix: "model_generate_" });
  try {
    await writeRandomModel(dir, config, { dtype: "F32", seed: 9, std: 0.3 });
    cached = await LlamaModel.load(await getGpu(), dir);
    return cached;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const PROMPTS = [someTokens(3, V, 31), someTokens(7, V, 32), someTokens(5, V, 33)];
const GREEDY: GenerateOptions = {
  maxNewTokens: 6,
  temperature: 0,
  topP: 1,
  seed: 1,
  stream: 0,
  stopIds: [],
  readbackEvery: 4,
};
const SAMPLED: GenerateOptions = { ...GREEDY, temperature: 0.9, topP: 0.9, seed: 77, stream: 3 };

for (const [mode, opts] of [["greedy", GREEDY], ["sampled", SAMPLED]] as const) {
  Deno.test(`KV-cache decoding equals full recomputation, bit for bit (${mode})`, async () => {
    const model = await testModel();
    const gpu = model.gpu;
    const res = await generate(model, PROMPTS, opts);
    assert.deepEqual(res.tokens.map((t) => t.length), [6, 6, 6]);
    assert.deepEqual(res.stopped, [false, false, false]);
    assert.equal(res.stats.readbacks, 2); // 4 steps, then 2
    assert.equal(res.stats.readbacksPerSequence, 2);
    assert.ok(
      res.stats.dispatchesPerToken > config.numLayers * 10,
      `${res.stats.dispatchesPerToken}`,
    );

    // One padded training-layout pass over every prompt + completion.
    const full = PROMPTS.map((p, b) => [...p, ...res.tokens[b]]);
    const S = Math.max(...full.map((f) => f.length));
    const pad = (f: number[]) => [...f, ...new Array(S - f.length).fill(0)];
    const tokens = Uint32Array.from(full.flatMap(pad));
    const targets = Uint32Array.from(full.flatMap((f) => pad(f.slice(1))));
    const pass = new ForwardPass(model, full.length, S);
    const rec = new Recorder(gpu);
    const { logp } = pass.forwardLogprobs(rec, tokens, targets);
    const logits = new ForwardPass(model, full.length, S).forwardLogits(rec, tokens);
    // Re-draw every generated token from the recomputed logits with the same RNG keys.
    const rows: number[] = [], positions: number[] = [], ids: number[] = [];
    PROMPTS.forEach((p, b) => {
      for (let j = 0; j < res.tokens[b].length; j++) {
        rows.push(b * S + p.length + j - 1);
        positions.push(p.length + j);
        ids.push(b);
      }
    });
    const picked = createBuffer(gpu, rows.length * V * 4, "picked");
    rows.forEach((r, i) => rec.copy(logits, r * V * 4, picked, i * V * 4, V * 4));
    const redrawn = createBuffer(gpu, rows.length * 4, "redrawn");
    sample(
      rec,
      picked,
      redrawn,
      rows.length,
      V,
      opts,
      uploadBuffer(gpu, Uint32Array.from(positions), "pos"),
      uploadBuffer(gpu, Uint32Array.from(ids), "ids"),
    );
    const pl = rec.read(logp), pr = rec.read(redrawn, 0, rows.length * 4);
    const pg = rec.read(picked, 0, rows.length * V * 4);
    await rec.submit();
    const lp = new Float32Array(await pl), again = new Uint32Array(await pr);
    const rowLogits = new Float32Array(await pg);
    let i = 0;
    PROMPTS.forEach((p, b) => {
      res.tokens[b].forEach((tok, j) => {
        assert.equal(again[i], tok, `seq ${b} token ${j}`);
        if (opts.temperature === 0) {
          const row = rowLogits.subarray(i * V, i * V + V);
          assert.equal(tok, row.indexOf(Math.max(...row)), `seq ${b} token ${j} is not the argmax`);
        }
        assert.equal(res.logprobs[b][j], lp[b * S + p.length + j - 1], `seq ${b} log-prob ${j}`);
        i++;
      });
    });
    assert.ok(res.logprobs.flat().every((x) => x < 0 && Number.isFinite(x)));
  });
}

Deno.test("a prompt alone or inside a batch of different-length prompts gives identical bits", async () => {
  const model = await testModel();
  const p = someTokens(4, V, 41);
  for (const opts of [GREEDY, SAMPLED]) {
    const alone = await generate(model, [p], { ...opts, rowIds: [7], readbackEvery: 8 });
    const batch = await generate(model, [PROMPTS[1], p, PROMPTS[0]], {
      ...opts,
      rowIds: [0, 7, 2],
      readbackEvery: 3,
      prefillChunkRows: 4, // prefill chunks cut through the prompts
    });
    assert.deepEqual(batch.tokens[1], alone.tokens[0]);
    assert.deepEqual(batch.logprobs[1], alone.logprobs[0]);
  }
});

Deno.test("per-sequence stop ids end a sequence (stop token kept) and leave the others running", async () => {
  const model = await testModel();
  const free = await generate(model, PROMPTS, { ...GREEDY, maxNewTokens: 8 });
  // A stop id that first appears at index >= 1 of sequence 0.
  const seq0 = free.tokens[0];
  const at = seq0.findIndex((t, j) => j >= 1 && !seq0.slice(0, j).includes(t));
  assert.ok(at >= 1, "need a token that is new at some step");
  const stopId = seq0[at];
  const res = await generate(model, PROMPTS, {
    ...GREEDY,
    maxNewTokens: 8,
    stopIds: [stopId],
    readbackEvery: 2,
  });
  PROMPTS.forEach((_, b) => {
    const first = free.tokens[b].indexOf(stopId);
    const want = first < 0 ? free.tokens[b] : free.tokens[b].slice(0, first + 1);
    assert.deepEqual(res.tokens[b], want, `seq ${b}`);
    assert.deepEqual(res.logprobs[b], free.logprobs[b].slice(0, want.length));
    assert.equal(res.stopped[b], first >= 0);
  });
  assert.equal(res.tokens[0].length, at + 1);
  assert.ok(res.stats.readbacksPerSequence < res.stats.readbacks + 1e-9);
});

Deno.test("pipelined decoding gives the same bits as segment-by-segment decoding, stops included", async () => {
  const model = await testModel();
  const prompts = [...PROMPTS, someTokens(6, V, 34)];
  const free = await generate(model, prompts, { ...SAMPLED, maxNewTokens: 12, pipelined: false });
  // Stop ids that end sequences at different steps: sequence b's first new token from step 2b on.
  const stopIds = free.tokens.map((t, b) =>
    t.find((x, j) => j >= 2 * b && !t.slice(0, j).includes(x))!
  );
  for (const readbackEvery of [1, 2, 3, 5]) {
    const opts = { ...SAMPLED, maxNewTokens: 12, stopIds, readbackEvery };
    const plain = await generate(model, prompts, { ...opts, pipelined: false });
    const piped = await generate(model, prompts, { ...opts, pipelined: true });
    const what = `readbackEvery ${readbackEvery}`;
    assert.deepEqual(piped.tokens, plain.tokens, what);
    assert.deepEqual(piped.logprobs, plain.logprobs, what);
    assert.deepEqual(piped.stopped, plain.stopped, what);
    const ends = new Set(plain.tokens.map((t, b) => plain.stopped[b] ? t.length : 0));
    assert.ok(ends.size >= 3, `${what}: sequences stop at different steps (${[...ends]})`);
    prompts.forEach((_, b) => {
      assert.deepEqual(plain.tokens[b], free.tokens[b].slice(0, plain.tokens[b].length), what);
    });
    assert.equal(plain.stats.pipelined, false);
    assert.equal(piped.stats.pipelined, true);
    assert.equal(plain.stats.discardedTokens, 0, what);
    // A sequence that stopped while others ran on had a speculative segment computed for it.
    assert.ok(piped.stats.discardedTokens > 0, `${what}: ${piped.stats.discardedTokens}`);
  }
});

Deno.test("SELFPLAY_PIPELINE overrides the adapter's default; a bad value is refused", () => {
  const gpuInfo = { isFallbackAdapter: false, kernels: "workgroup" } as const;
  const cpuInfo = { isFallbackAdapter: true, kernels: "serial" } as const;
  assert.equal(choosePipelining(undefined, gpuInfo), true);
  assert.equal(choosePipelining(undefined, cpuInfo), false);
  assert.equal(choosePipelining(undefined, { ...gpuInfo, kernels: "serial" }), false);
  assert.equal(choosePipelining("on", cpuInfo), true);
  assert.equal(choosePipelining("off", gpuInfo), false);
  assert.throws(() => choosePipelining("yes", gpuInfo), /SELFPLAY_PIPELINE=yes: expected/);
});

Deno.test("generation gives the same bits in both kernel styles (shared q|k|v and gate|up products on GPUs)", async () => {
  const model = await testModel();
  const gpu = model.gpu, own = gpu.info.kernels;
  const opts = { ...SAMPLED, maxNewTokens: 5, readbackEvery: 2 };
  try {
    gpu.info.kernels = "serial";
    const serial = await generate(model, PROMPTS, opts);
    gpu.info.kernels = "workgroup";
    const workgroup = await generate(model, PROMPTS, opts);
    assert.deepEqual(workgroup.tokens, serial.tokens);
    assert.deepEqual(workgroup.logprobs, serial.logprobs);
    // The workgroup style's decode step runs q|k|v and gate|up as one dispatch each.
    const saved = serial.stats.dispatchesPerToken - workgroup.stats.dispatchesPerToken;
    assert.equal(saved, 3 * config.numLayers, `dispatches per token: ${saved} fewer`);
  } finally {
    gpu.info.kernels = own;
  }
});

Deno.test("generate refuses bad prompts and options with clear messages", async () => {
  const model = await testModel();
  await assert.rejects(() => generate(model, [[1, 2], []], GREEDY), /prompt 1 is empty/);
  await assert.rejects(() => generate(model, [[1, V]], GREEDY), /prompt 0 token 1 = 64 is outside/);
  await assert.rejects(
    () => generate(model, [[1]], { ...GREEDY, maxNewTokens: 0 }),
    /maxNewTokens must be an integer >= 1/,
  );
  await assert.rejects(() => generate(model, [[1]], { ...GREEDY, topP: 0 }), /topP/);
});
