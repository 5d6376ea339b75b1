/**
 * onnxruntime as an independent check of the engine: each model is exported to ONNX, run by
 * onnxruntime-node on the CPU, and compared with the engine on lavapipe. Logits agree within
 * 1e-5 relative (lib/onnx/parity.ts: max |difference| / max |engine logit| over the whole
 * [B, S, vocab] tensor), greedy generation through the past-key/value graph gives the engine's
 * tokens, and a reward model's scores agree within 1e-5 relative.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { getGpu } from "../gpu/device.ts";
import { Recorder } from "../gpu/recorder.ts";
import type { LlamaConfig } from "../lib/model/config.ts";
import { tinyTestConfig, writeRandomModel } from "../lib/model/random_model.ts";
import type { Dtype } from "../lib/model/safetensors/format.ts";
import { LlamaModel } from "../lib/model/llama.ts";
import { ForwardPass } from "../lib/model/forward.ts";
import { generate } from "../lib/model/generate.ts";
import { RewardModel } from "../lib/rewards/reward_model.ts";
import { TINY_VOCAB_SIZE, writeTinyTokenizer } from "../lib/tinyworld/tokenizer.ts";
import { exportCheckpointOnnx } from "../lib/onnx/export.ts";
import type { OnnxWeightDtype } from "../lib/onnx/llama_graph.ts";
import { OrtLlama } from "../lib/onnx/ort.ts";
import { relativeError } from "../lib/onnx/parity.ts";
import { someTokens } from "./reference/llama_ref.ts";

/** The parity target of the issue: logits and scores within 1e-5 relative. */
const TOLERANCE = 1e-5;

const TINY_BASE = "results/tiny-pretrain/6039cb339f555af1/checkpoints/step-1500";

const LLAMA3_SCALING = {
  factor: 8,
  lowFreqFactor: 1,
  highFreqFactor: 4,
  // Small on purpose: with head_dim 8 the four frequencies fall in all three bands.
  originalMaxPositionEmbeddings: 64,
};

async function engineLogits(model: LlamaModel, seqs: number[][]): Promise<Float32Array> {
  const B = seqs.length, S = seqs[0].length, V = model.config.vocabSize;
  const pass = new ForwardPass(model, B, S);
  const rec = new Recorder(model.gpu);
  const buf = pass.forwardLogits(rec, Uint32Array.from(seqs.flat()));
  const p = rec.read(buf, 0, B * S * V * 4);
  await rec.submit();
  const out = new Float32Array(await p);
  pass.destroy();
  return out;
}

async function engineGreedy(
  model: LlamaModel,
  prompts: number[][],
  maxNewTokens: number,
  stopIds: number[],
): Promise<number[][]> {
  const r = await generate(model, prompts, {
    maxNewTokens,
    temperature: 0,
    topP: 1,
    seed: 0,
    stream: 0,
    stopIds,
  });
  return r.tokens;
}

/** Exports `dir`, then checks logits and greedy tokens of onnxruntime against the engine. */
async function checkCausalLm(
  dir: string,
  onnxPath: string,
  opts: { dtype?: OnnxWeightDtype; prompts: number[][]; maxNewTokens: number; stopIds: number[] },
): Promise<{ rel: number; tokens: number[][] }> {
  const gpu = await getGpu();
  await exportCheckpointOnnx(dir, onnxPath, { dtype: opts.dtype });
  const model = await LlamaModel.load(gpu, dir);
  const ort = await OrtLlama.open(onnxPath, model.config, { intraOpThreads: 1 });
  try {
    const V = model.config.vocabSize, S = 9;
    const seqs = [someTokens(S, V, 1), someTokens(S, V, 2)];
    const want = await engineLogits(model, seqs);
    const got = await ort.logits(seqs);
    const scale = want.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
    assert.ok(scale > 0.5, `logits too small to test anything (${scale})`);
    const rel = relativeError(got, want);
    assert.ok(rel <= TOLERANCE, `logits: relative error ${rel} > ${TOLERANCE}`);

    const engineTokens = await engineGreedy(model, opts.prompts, opts.maxNewTokens, opts.stopIds);
    const ortTokens = await ort.greedy(opts.prompts, opts);
    assert.deepEqual(ortTokens.tokens, engineTokens, "greedy tokens differ");
    return { rel, tokens: engineTokens };
  } finally {
    await ort.release();
  }
}

const CASES: { name: string; config: LlamaConfig; dtype: Dtype; export?: OnnxWeightDtype }[] = [
  { name: "F32, untied, GQA 4/2", config: tinyTestConfig(), dtype: "F32" },
  {
    name: "BF16, tied, MHA, llama3 RoPE scaling",
    config: tinyTestConfig({
      numKvHeads: 4,
      tieWordEmbeddings: true,
      ropeScaling: LLAMA3_SCALING,
      ropeTheta: 500000,
    }),
    dtype: "BF16",
  },
  {
    name: "F16, untied, head_dim 12 != hidden/heads, GQA 6/2, 3 layers, exported as f16",
    config: tinyTestConfig({ numHeads: 6, numKvHeads: 2, headDim: 12, numLayers: 3 }),
    dtype: "F16",
    export: "f16",
  },
];

for (const tc of CASES) {
  Deno.test(`onnxruntime matches the engine: ${tc.name}`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "onnx_parity_" });
    try {
      await writeRandomModel(join(dir, "model"), tc.config, { dtype: tc.dtype, seed: 5, std: 0.3 });
      const V = tc.config.vocabSize;
      // Two prompts of different lengths: onnxruntime left-pads, the engine packs.
      const prompts = [someTokens(5, V, 3), someTokens(8, V, 4)];
      const r = await checkCausalLm(join(dir, "model"), join(dir, "model.onnx"), {
        dtype: tc.export,
        prompts,
        maxNewTokens: 12,
        stopIds: [],
      });
      assert.deepEqual(r.tokens.map((t) => t.length), [12, 12]);
      console.log(`${tc.name}: logits relative error ${r.rel.toExponential(2)}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("onnxruntime matches the engine on the committed tiny base (logits, greedy replies)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "onnx_parity_base_" });
  try {
    const { loadTokenizer } = await import("../lib/model/tokenizer.ts");
    const tok = await loadTokenizer(TINY_BASE);
    const prompts = ["reverse: emub", "add 12 and 30", "sort: d b a c"].map((q) =>
      tok.encodeChat([{ role: "user", content: q }], { addGenerationPrompt: true })
    );
    const r = await checkCausalLm(TINY_BASE, join(dir, "base.onnx"), {
      prompts,
      maxNewTokens: 24,
      stopIds: tok.stopIds,
    });
    assert.ok(r.tokens.some((t) => t.length > 1), "the base replied with nothing to compare");
    console.log(
      `tiny base: logits relative error ${r.rel.toExponential(2)}; replies ` +
        JSON.stringify(r.tokens.map((t) => tok.decode(t, { skipSpecialTokens: true }))),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("onnxruntime's reward scores match the engine's RewardModel", async () => {
  const gpu = await getGpu();
  const dir = await Deno.makeTempDir({ prefix: "onnx_parity_reward_" });
  try {
    const modelDir = join(dir, "rm");
    const config = tinyTestConfig({
      architecture: "LlamaForSequenceClassification",
      vocabSize: TINY_VOCAB_SIZE,
      numLabels: 1,
      padTokenId: 0,
      tieWordEmbeddings: false,
    });
    await writeRandomModel(modelDir, config, { dtype: "BF16", seed: 11, std: 0.3 });
    await writeTinyTokenizer(modelDir);
    const items = [
      { query: "Reverse: abc", answer: "cba" },
      { query: "Add 12 and 30", answer: "42" },
      { query: "Sort: d b a c", answer: "a b c d, and that is all there is to it." },
      { query: "Hi", answer: "" },
    ];
    const rm = await RewardModel.load(gpu, modelDir, { batchSize: 3 });
    const want = await rm.score(items);
    await exportCheckpointOnnx(modelDir, join(dir, "rm.onnx"));
    const ort = await OrtLlama.open(join(dir, "rm.onnx"), rm.model.config, { intraOpThreads: 1 });
    try {
      const seqs = items.map((it) => rm.encodePair(it));
      assert.ok(seqs.every((s) => !s.includes(0)), "a pair holds the pad id: pooling would differ");
      // One batch, right-padded with the pad id: the graph pools at each last real token.
      const got = (await ort.scores(seqs)).map((s) => s[0]);
      const rel = relativeError(got, want);
      assert.ok(rel <= TOLERANCE, `scores ${got} vs ${want}: relative error ${rel}`);
      console.log(`reward scores: relative error ${rel.toExponential(2)}`);
    } finally {
      await ort.release();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
