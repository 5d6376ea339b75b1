import assert from "node:assert/strict";
import { getGpu } from "../gpu/device.ts";
import { readF32, uploadBuffer, writeBuffer } from "../gpu/buffers.ts";
import { Recorder } from "../gpu/recorder.ts";
import { LlamaModel } from "../lib/model/llama.ts";
import { ForwardPass } from "../lib/model/forward.ts";
import { tinyTestConfig } from "../lib/model/random_model.ts";
import { packPromptCompletions } from "../lib/train/batch.ts";
import { policyLoss } from "../lib/train/losses.ts";
import { completionLogprobs, forwardLogp } from "../lib/train/score.ts";
import { randn } from "./helpers.ts";

// The losses' dlogp, pushed through the model's backward, must be the gradient of the loss as a
// function of the weights: checked against central differences of (forward -> loss).
Deno.test("policy loss with advantages and k3 KL: backward(dlogp) matches finite differences", async () => {
  const gpu = await getGpu();
  const config = tinyTestConfig();
  const policy = LlamaModel.synthetic(gpu, config, 11);
  const reference = LlamaModel.synthetic(gpu, config, 12);
  const packed = packPromptCompletions([
    { prompt: [5, 9, 2], completion: [17, 3, 40] },
    { prompt: [8, 1], completion: [22, 22, 7, 61] },
  ], 0);
  const pass = new ForwardPass(policy, packed.batch, packed.seqLen);
  const refLogp = await forwardLogp(
    new ForwardPass(reference, packed.batch, packed.seqLen),
    packed,
  );
  const lossAt = (logp: Float32Array) =>
    policyLoss({
      logp,
      mask: packed.mask,
      batch: packed.batch,
      seqLen: packed.seqLen,
      refLogp,
      weights: [0.8, -0.5],
      klCoef: 0.3,
      klEstimator: "k3",
      aggregation: "sequence-sum",
    });

  const logp = await forwardLogp(pass, packed);
  const perSeq = completionLogprobs(packed, logp);
  assert.deepEqual(perSeq.map((r) => r.length), [3, 4]);
  const base = lossAt(logp);
  assert.deepEqual(base.sequenceLogp, perSeq.map((r) => r.reduce((a, b) => a + b, 0)));
  const grads = policy.zeroGrads();
  const rec = new Recorder(gpu);
  pass.backward(rec, uploadBuffer(gpu, base.dlogp, "dlogp"), grads);
  await rec.submit();

  // Directional derivatives along whole tensors: d = g/|g| (expects |g|, catches scale and
  // sign errors) and a fixed random unit direction (catches a wrong direction). Whole-tensor
  // steps keep the signal far above the f32 noise of the forward.
  const names = [
    "model.embed_tokens.weight",
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.0.self_attn.v_proj.weight",
    "model.layers.1.mlp.down_proj.weight",
    "model.layers.1.post_attention_layernorm.weight",
    "model.norm.weight",
  ];
  const h = 1e-2;
  for (const name of names) {
    const buf = policy.w(name);
    const n = policy.paramNumel(name);
    const w = await readF32(gpu, buf, n);
    const g = await readF32(gpu, grads.get(name)!, n);
    const gNorm = Math.hypot(...g);
    assert.ok(gNorm > 1e-4, `${name}: gradient norm ${gNorm} too small to check`);
    const random = randn(n, 99);
    const rNorm = Math.hypot(...random);
    for (const dir of [g.map((x) => x / gNorm), random.map((x) => x / rNorm)]) {
      const at = async (delta: number) => {
        writeBuffer(gpu, buf, w.map((x, i) => x + delta * dir[i]));
        return lossAt(await forwardLogp(pass, packed)).loss;
      };
      const fd = (await at(h) - await at(-h)) / (2 * h);
      writeBuffer(gpu, buf, w);
      let want = 0;
      for (let i = 0; i < n; i++) want += g[i] * dir[i];
      assert.ok(
        Math.abs(fd - want) <= 2e-3 * gNorm + 2e-2 * Math.abs(want),
        `${name}: backward gives ${want} along the direction, finite difference ${fd}`,
      );
    }
  }
});
