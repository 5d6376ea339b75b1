/**
 * Precision "bf16" (LlamaModel.usePrecision): f32 masters, packed-BF16 compute copies that every
 * pass reads. A bf16-precision model computes the bits of an f32 model holding the BF16-rounded
 * weights (log-probs, logits and every gradient; the gradients also against finite differences
 * of that forward), generation and training log-probs agree bit for bit before and after an
 * optimizer step (which refreshes the copies from the updated masters), and a checkpoint resume
 * (masters saved, copies recomputed) is bit-identical to never having stopped.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { getGpu } from "../gpu/device.ts";
import { uploadBuffer, writeBuffer } from "../gpu/buffers.ts";
import { Recorder } from "../gpu/recorder.ts";
import { isNormWeight, type LlamaConfig } from "../lib/model/config.ts";
import { tinyTestConfig, writeRandomModel } from "../lib/model/random_model.ts";
import { LlamaModel } from "../lib/model/llama.ts";
import { ForwardPass } from "../lib/model/forward.ts";
import { generate, type GenerateOptions } from "../lib/model/generate.ts";
import { readWeightsToHost, saveWeights } from "../lib/model/weights.ts";
import { bf16ToF32, f32ToBf16 } from "../lib/model/safetensors/dtype.ts";
import { AdamW, type AdamWConfig, trainableParams } from "../lib/train/optimizer.ts";
import { meanNll } from "../lib/train/losses.ts";
import { reusedPass, trainStep } from "../lib/train/step.ts";
import { directoryWriter, loadTrainCheckpoint, saveCheckpoint } from "../lib/train/checkpoint.ts";
import { someTokens } from "./reference/llama_ref.ts";

const round = (x: Float32Array) => bf16ToF32(f32ToBf16(x));
const bits = (x: Float32Array) => new Uint32Array(x.buffer, x.byteOffset, x.length);

/** An F32 random checkpoint in a temp dir, and the same weights rounded to BF16 (kept F32). */
async function checkpoints(config: LlamaConfig, seed: number, std = 0.3) {
  const dir = await Deno.makeTempDir({ prefix: "model_precision_" });
  await writeRandomModel(join(dir, "f32"), config, { dtype: "F32", seed, std });
  const gpu = await getGpu();
  const m = await LlamaModel.load(gpu, join(dir, "f32"));
  const host = await readWeightsToHost(gpu, m.weights, config);
  m.destroy();
  const rounded = new Map([...host].map(([n, x]) => [n, isNormWeight(n) ? x : round(x)]));
  await saveWeights(join(dir, "rounded"), config, rounded, "F32");
  return { dir, f32: join(dir, "f32"), rounded: join(dir, "rounded"), host };
}

async function bf16Model(dir: string): Promise<LlamaModel> {
  const m = await LlamaModel.load(await getGpu(), dir);
  m.usePrecision("bf16");
  return m;
}

const B = 2, S = 5;

/** Log-probs, logits and every parameter gradient of Σ dlogp·logp for one batch. */
async function forwardBackward(model: LlamaModel, tokens: Uint32Array, dlogp: Float32Array) {
  const targets = tokens.map((_t, i) => (i % S === S - 1 ? 0 : tokens[i + 1]));
  const rec = new Recorder(model.gpu);
  const pass = new ForwardPass(model, B, S);
  const { logp } = pass.forwardLogprobs(rec, tokens, targets);
  const logits = new ForwardPass(model, B, S).forwardLogits(rec, tokens);
  const grads = model.zeroGrads();
  const reads = [rec.read(logp), rec.read(logits)];
  pass.backward(rec, uploadBuffer(model.gpu, dlogp, "dlogp"), grads);
  await rec.submit();
  const [lp, lg] = (await Promise.all(reads)).map((b) => new Float32Array(b));
  return { logp: lp, logits: lg, grads: await readWeightsToHost(model.gpu, grads, model.config) };
}

for (const tie of [false, true]) {
  Deno.test(`precision bf16 computes the bits of f32 on the BF16-rounded weights, gradients included (tied ${tie})`, async () => {
    const config = tinyTestConfig({ tieWordEmbeddings: tie });
    const ck = await checkpoints(config, 40 + Number(tie), 0.1);
    try {
      const mp = await bf16Model(ck.f32);
      const ref = await LlamaModel.load(await getGpu(), ck.rounded);
      assert.equal(mp.precision, "bf16");
      assert.equal(ref.precision, "f32");
      for (const name of mp.paramNames()) {
        assert.equal(mp.isBf16(name), !isNormWeight(name), name);
        assert.equal(mp.master(name).size, mp.paramNumel(name) * 4, `${name}: f32 master`);
      }
      const tokens = Uint32Array.from(someTokens(B * S, config.vocabSize, 7));
      const dlogp = Float32Array.from({ length: B * S }, (_, i) => (i % 3) - 1.25);
      const a = await forwardBackward(mp, tokens, dlogp);
      const b = await forwardBackward(ref, tokens, dlogp);
      assert.deepEqual(bits(a.logp), bits(b.logp), "log-probs");
      assert.deepEqual(bits(a.logits), bits(b.logits), "logits");
      for (const [name, g] of b.grads) {
        assert.deepEqual(bits(a.grads.get(name)!), bits(g), `gradient of ${name}`);
      }
      // The masters are the unrounded f32 weights.
      const masters = await readWeightsToHost(mp.gpu, mp.weights, config);
      for (const [name, x] of ck.host) assert.deepEqual(bits(masters.get(name)!), bits(x), name);

      // The gradient is that of the bf16 forward: central differences of the loss over the
      // compute values (the rounded weights, perturbed in the f32 model) at a few coordinates.
      const loss = async (name: string, i: number, h: number) => {
        const x = ck.host.get(name)!;
        const w = isNormWeight(name) ? x.slice() : round(x);
        w[i] += h;
        writeBuffer(ref.gpu, ref.w(name), w);
        const { logp } = await forwardBackward(ref, tokens, dlogp);
        writeBuffer(ref.gpu, ref.w(name), isNormWeight(name) ? x : round(x));
        let s = 0;
        for (let m = 0; m < B * S; m++) s += dlogp[m] * logp[m];
        return s;
      };
      const h = 1e-2;
      for (
        const [name, i] of [
          ["model.embed_tokens.weight", 5 * config.hiddenSize + 3],
          ["model.layers.0.self_attn.q_proj.weight", 17],
          ["model.layers.1.mlp.down_proj.weight", 101],
          ["model.layers.1.input_layernorm.weight", 4],
        ] as const
      ) {
        const fd = ((await loss(name, i, h)) - (await loss(name, i, -h))) / (2 * h);
        const g = a.grads.get(name)![i];
        assert.ok(
          Math.abs(fd - g) <= 2e-3 + 2e-2 * Math.abs(g),
          `${name}[${i}]: gradient ${g}, finite difference ${fd}`,
        );
      }
      mp.destroy();
      ref.destroy();
    } finally {
      await Deno.remove(ck.dir, { recursive: true });
    }
  });
}

Deno.test("a bf16-precision policy and a bf16-stored reference of the same F32 checkpoint agree bit for bit", async () => {
  const config = tinyTestConfig({ tieWordEmbeddings: true });
  const ck = await checkpoints(config, 46);
  try {
    const policy = await bf16Model(ck.f32);
    const reference = await LlamaModel.load(await getGpu(), ck.f32, {
      storage: "bf16",
      roundToBf16: true,
    });
    assert.equal(reference.storage, "bf16");
    const tokens = Uint32Array.from(someTokens(B * S, config.vocabSize, 8));
    const targets = tokens.map((_t, i) => (i % S === S - 1 ? 0 : tokens[i + 1]));
    const logp = async (m: LlamaModel) => {
      const rec = new Recorder(m.gpu);
      const out = new ForwardPass(m, B, S, { forwardOnly: true }).forwardLogprobs(
        rec,
        tokens,
        targets,
      );
      const read = rec.read(out.logp);
      await rec.submit();
      return new Float32Array(await read);
    };
    // So with reference.storage "bf16" the KL to the reference starts at exactly 0.
    assert.deepEqual(bits(await logp(policy)), bits(await logp(reference)));
    policy.destroy();
    reference.destroy();
  } finally {
    await Deno.remove(ck.dir, { recursive: true });
  }
});

const CFG: AdamWConfig = { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1, maxGradNorm: 1 };

/** One AdamW step on a fixed batch that depends on the step number. */
async function step(pass: ForwardPass, opt: AdamW, V: number) {
  const s = opt.step + 1;
  const tokens = new Uint32Array(B * S).map((_, i) => (s * 11 + i * 7) % V);
  const targets = new Uint32Array(B * S).map((_, i) => (s * 5 + i * 3 + 1) % V);
  const mask = new Float32Array(B * S).map((_, i) => (i % S === 0 ? 0 : 1));
  return await trainStep(
    reusedPass(pass),
    opt,
    [{ tokens, targets }],
    3e-2,
    (logp) => meanNll(logp, mask, B, S),
  );
}

const GREEDY: GenerateOptions = {
  maxNewTokens: 5,
  temperature: 0,
  topP: 1,
  seed: 1,
  stream: 0,
  stopIds: [],
  readbackEvery: 4,
};

/**
 * Generation's log-probs, checked bit for bit against a training pass over the same tokens, in
 * both kernel styles (the GPU style runs the few-row, shared q|k|v and tiled kernels on packed
 * weights), which must also agree with each other. Returns the greedy log-probs.
 */
async function generationMatchesTraining(model: LlamaModel, prompts: number[][]) {
  const gpu = model.gpu, own = gpu.info.kernels;
  const got: number[][] = [];
  try {
    for (const style of ["serial", "workgroup"] as const) {
      gpu.info.kernels = style;
      got.push(await generationMatchesTrainingIn(model, prompts));
    }
  } finally {
    gpu.info.kernels = own;
  }
  assert.deepEqual(got[1], got[0], "the two kernel styles generate the same log-probs");
  return got[0];
}

async function generationMatchesTrainingIn(model: LlamaModel, prompts: number[][]) {
  for (const opts of [GREEDY, { ...GREEDY, temperature: 0.9, topP: 0.9, seed: 5, stream: 2 }]) {
    const res = await generate(model, prompts, opts);
    const full = prompts.map((p, b) => [...p, ...res.tokens[b]]);
    const len = Math.max(...full.map((f) => f.length));
    const pad = (f: number[]) => [...f, ...new Array(len - f.length).fill(0)];
    const rec = new Recorder(model.gpu);
    const { logp } = new ForwardPass(model, full.length, len).forwardLogprobs(
      rec,
      Uint32Array.from(full.flatMap(pad)),
      Uint32Array.from(full.flatMap((f) => pad(f.slice(1)))),
    );
    const read = rec.read(logp);
    await rec.submit();
    const lp = new Float32Array(await read);
    prompts.forEach((p, b) =>
      res.logprobs[b].forEach((x, j) =>
        assert.equal(x, lp[b * len + p.length + j - 1], `seq ${b} log-prob ${j}`)
      )
    );
    if (opts === GREEDY) return res.logprobs.flat();
  }
  throw new Error("unreachable");
}

Deno.test("precision bf16: generation and training log-probs agree bit for bit, before and after a step", async () => {
  const config = tinyTestConfig();
  const ck = await checkpoints(config, 44);
  try {
    const model = await bf16Model(ck.f32);
    const prompts = [someTokens(3, config.vocabSize, 1), someTokens(6, config.vocabSize, 2)];
    const before = await generationMatchesTraining(model, prompts);
    const opt = new AdamW(model.gpu, trainableParams(model), CFG);
    const r = await step(new ForwardPass(model, B, S), opt, config.vocabSize);
    assert.ok(Number.isFinite(r.loss) && r.gradNorm > 0);
    // The step updated the f32 masters and refreshed every compute copy from them.
    const masters = await readWeightsToHost(model.gpu, model.weights, config);
    let moved = 0;
    for (const name of model.paramNames()) {
      const m = masters.get(name)!;
      if (bits(m).some((u, i) => u !== bits(ck.host.get(name)!)[i])) moved++;
      if (isNormWeight(name)) continue;
      const copy = await readWeightsToHost(model.gpu, new Map([[name, model.w(name)]]), config);
      assert.deepEqual(bits(copy.get(name)!), bits(round(m)), `compute copy of ${name}`);
    }
    assert.equal(moved, model.paramNames().length, "every master moved");
    const after = await generationMatchesTraining(model, prompts);
    assert.notDeepEqual(after, before, "the step changed what generation computes");
    opt.destroy();
    model.destroy();
  } finally {
    await Deno.remove(ck.dir, { recursive: true });
  }
});

Deno.test("precision bf16: save the masters, reload, one more step: bit-identical to not stopping", async () => {
  const gpu = await getGpu();
  const config = tinyTestConfig();
  const ck = await checkpoints(config, 45);
  try {
    const a = await bf16Model(ck.f32);
    const optA = new AdamW(gpu, trainableParams(a), CFG);
    const passA = new ForwardPass(a, B, S);
    for (let i = 0; i < 3; i++) await step(passA, optA, config.vocabSize);

    const b = await bf16Model(ck.f32);
    const optB = new AdamW(gpu, trainableParams(b), CFG);
    const passB = new ForwardPass(b, B, S);
    for (let i = 0; i < 2; i++) await step(passB, optB, config.vocabSize);
    const root = join(ck.dir, "run");
    const rel = await saveCheckpoint(directoryWriter(root), "checkpoints", {
      gpu,
      config,
      weights: b.weights,
      optimizer: optB,
      state: {
        step: 2,
        dataPosition: 4,
        rng: { seed: 9 },
        lrSchedule: { kind: "constant", lr: 0 },
      },
    });
    const ckDir = join(root, rel);
    const saved = await LlamaModel.load(gpu, ckDir);
    assert.equal(saved.precision, "f32", "a checkpoint holds the f32 masters only");
    saved.destroy();
    const c = await bf16Model(ckDir);
    const optC = new AdamW(gpu, trainableParams(c), CFG);
    const loaded = await loadTrainCheckpoint(ckDir);
    optC.loadState(loaded.optimizer, loaded.state.step, ckDir);
    await step(new ForwardPass(c, B, S), optC, config.vocabSize);
    const [wa, wc] = [
      await readWeightsToHost(gpu, a.weights, config),
      await readWeightsToHost(gpu, c.weights, config),
    ];
    for (const [name, x] of wa) {
      assert.deepEqual(bits(wc.get(name)!), bits(x), `master ${name} after resuming`);
    }
  } finally {
    await Deno.remove(ck.dir, { recursive: true });
  }
});

Deno.test("precision bf16 needs f32 weights and is set once", async () => {
  const gpu = await getGpu();
  const config = tinyTestConfig();
  const frozen = LlamaModel.synthetic(gpu, config, 1, "bf16");
  assert.throws(() => frozen.usePrecision("bf16"), /stored as BF16 \(a frozen copy/);
  const m = LlamaModel.synthetic(gpu, config, 1);
  m.usePrecision("f32");
  assert.equal(m.precision, "f32");
  m.usePrecision("bf16");
  assert.throws(() => m.usePrecision("bf16"), /precision "bf16" was already set/);
  frozen.destroy();
  m.destroy();
});
