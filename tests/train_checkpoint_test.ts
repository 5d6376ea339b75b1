import assert from "node:assert/strict";
import { join } from "node:path";
import { getGpu } from "../gpu/device.ts";
import { LlamaModel } from "../lib/model/llama.ts";
import { ForwardPass } from "../lib/model/forward.ts";
import { tinyTestConfig, writeRandomModel } from "../lib/model/random_model.ts";
import { readWeightsToHost } from "../lib/model/weights.ts";
import { AdamW, type AdamWConfig, trainableParams } from "../lib/train/optimizer.ts";
import { meanNll } from "../lib/train/losses.ts";
import { reusedPass, trainStep } from "../lib/train/step.ts";
import { lrAt, type LrSchedule } from "../lib/train/schedule.ts";
import {
  directoryWriter,
  latestCheckpoint,
  loadTrainCheckpoint,
  saveCheckpoint,
  verifyCheckpoint,
} from "../lib/train/checkpoint.ts";

const CFG: AdamWConfig = { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1, maxGradNorm: 1 };
const SCHEDULE: LrSchedule = { kind: "cosine", lr: 1e-2, warmupSteps: 1, totalSteps: 4 };
const B = 2, S = 6;

/** A different fixed batch per step (step is 1-based). */
function batchOf(step: number, V: number) {
  const tokens = new Uint32Array(B * S).map((_, i) => (step * 11 + i * 7) % V);
  const targets = new Uint32Array(B * S).map((_, i) => (step * 5 + i * 3 + 1) % V);
  const mask = new Float32Array(B * S).map((_, i) => (i % S === 0 ? 0 : 1));
  return { tokens, targets, mask };
}

async function step(pass: ForwardPass, opt: AdamW, V: number) {
  const s = opt.step + 1;
  const mb = batchOf(s, V);
  return await trainStep(
    reusedPass(pass),
    opt,
    [mb],
    lrAt(SCHEDULE, s),
    (logp) => meanNll(logp, mb.mask, B, S),
  );
}

Deno.test("save, reload, one more step: bit-identical to never having stopped", async () => {
  const gpu = await getGpu();
  const dir = await Deno.makeTempDir({ prefix: "ckpt-test-" });
  try {
    const src = join(dir, "model");
    const config = tinyTestConfig();
    await writeRandomModel(src, config, { dtype: "BF16", seed: 3 });
    await Deno.writeTextFile(join(src, "tokenizer.json"), '{"stand-in": true}\n');
    const V = config.vocabSize;

    // Run A: three steps straight through.
    const a = await LlamaModel.load(gpu, src);
    const optA = new AdamW(gpu, trainableParams(a), CFG);
    const passA = new ForwardPass(a, B, S);
    for (let i = 0; i < 3; i++) await step(passA, optA, V);

    // Run B: two steps, checkpoint, a fresh process-like reload, one more step.
    const b = await LlamaModel.load(gpu, src);
    const optB = new AdamW(gpu, trainableParams(b), CFG);
    const passB = new ForwardPass(b, B, S);
    for (let i = 0; i < 2; i++) await step(passB, optB, V);
    const root = join(dir, "run");
    const rel = await saveCheckpoint(directoryWriter(root), "checkpoints", {
      gpu,
      config: b.config,
      weights: b.weights,
      optimizer: optB,
      state: { step: 2, dataPosition: 4, rng: { seed: 9 }, lrSchedule: SCHEDULE },
      tokenizerDir: src,
    });
    assert.equal(rel, "checkpoints/step-2");
    const ckDir = join(root, rel);
    assert.equal(await latestCheckpoint(join(root, "checkpoints")), ckDir);
    await verifyCheckpoint(ckDir);
    assert.equal(await Deno.readTextFile(join(ckDir, "tokenizer.json")), '{"stand-in": true}\n');

    const ck = await loadTrainCheckpoint(ckDir);
    assert.deepEqual(ck.state, {
      step: 2,
      dataPosition: 4,
      rng: { seed: 9 },
      lrSchedule: SCHEDULE,
    });
    const c = await LlamaModel.load(gpu, ckDir); // the weights load like any HF model
    const optC = new AdamW(gpu, trainableParams(c), CFG);
    optC.loadState(ck.optimizer, ck.state.step, ckDir);
    const passC = new ForwardPass(c, B, S);
    const last = await step(passC, optC, V);
    const lastA = await readWeightsToHost(gpu, a.weights, a.config);
    const lastC = await readWeightsToHost(gpu, c.weights, c.config);
    assert.ok(Number.isFinite(last.loss) && last.gradNorm > 0);
    for (const [name, wa] of lastA) {
      assert.deepEqual(
        new Uint32Array(lastC.get(name)!.buffer),
        new Uint32Array(wa.buffer),
        `weights of ${name} differ after resuming`,
      );
    }
    const stA = await optA.readState(), stC = await optC.readState();
    for (const [name, s] of stA) {
      assert.deepEqual(new Uint32Array(stC.get(name)!.m.buffer), new Uint32Array(s.m.buffer));
      assert.deepEqual(new Uint32Array(stC.get(name)!.v.buffer), new Uint32Array(s.v.buffer));
    }
    // The weights did move (the comparison above is not between two untouched copies).
    const init = await readWeightsToHost(gpu, (await LlamaModel.load(gpu, src)).weights, config);
    const q = "model.layers.0.self_attn.q_proj.weight";
    assert.notDeepEqual(
      Array.from(init.get(q)!.slice(0, 8)),
      Array.from(lastA.get(q)!.slice(0, 8)),
    );

    // A corrupted file is caught by the sha256 list.
    const f = join(ckDir, "state.json");
    await Deno.writeTextFile(f, (await Deno.readTextFile(f)).replace('"step": 2', '"step": 3'));
    await assert.rejects(() => loadTrainCheckpoint(ckDir), /state\.json: sha256 .* does not match/);
    // A folder without SHA256SUMS (an interrupted save) is not a checkpoint.
    await Deno.mkdir(join(root, "checkpoints", "step-7"));
    assert.equal(await latestCheckpoint(join(root, "checkpoints")), ckDir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
