// One LSP optimizer step on the GPU moves the policy the way the loss says: with beta = 0 the
// advantage-weighted sequence log-likelihood sum_k A_k log pi(seq_k) goes up, and sequences with
// positive advantage gain probability relative to those with negative advantage.
import { assert } from "./rl_asserts.ts";
import { getGpu } from "../gpu/device.ts";
import { Recorder } from "../gpu/recorder.ts";
import { LlamaModel } from "../lib/model/llama.ts";
import { ForwardPass } from "../lib/model/forward.ts";
import { tinyTestConfig } from "../lib/model/random_model.ts";
import { AdamW, trainableParams } from "../lib/train/optimizer.ts";
import { passPerMicroBatch, trainStep } from "../lib/train/step.ts";
import {
  lspMicroLoss,
  packRollouts,
  type RlMicroBatch,
  roleNormalizers,
  type RolloutSequence,
} from "../lib/rl/lsp_loss.ts";

async function sequenceLogps(model: LlamaModel, mbs: RlMicroBatch[]): Promise<number[]> {
  const out: number[] = [];
  for (const mb of mbs) {
    const pass = new ForwardPass(model, mb.batch, mb.seqLen);
    const rec = new Recorder(model.gpu);
    const o = pass.forwardLogprobs(rec, mb.tokens, mb.targets);
    const read = rec.read(o.logp, 0, mb.batch * mb.seqLen * 4);
    await rec.submit();
    const lp = new Float32Array(await read);
    pass.destroy();
    for (let b = 0; b < mb.batch; b++) {
      let s = 0;
      for (let t = 0; t < mb.seqLen; t++) s += mb.mask[b * mb.seqLen + t] * lp[b * mb.seqLen + t];
      out.push(s);
    }
  }
  return out;
}

Deno.test("one step with beta 0 raises sum A * log pi over the iteration's sequences", async () => {
  const gpu = await getGpu();
  const model = LlamaModel.synthetic(gpu, tinyTestConfig(), 11);
  const opt = new AdamW(gpu, trainableParams(model), {
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weightDecay: 0,
    maxGradNorm: 0,
  });
  const seqs: RolloutSequence[] = [
    {
      role: "challenger" as const,
      prompt: [1, 5, 6],
      completion: [7, 8, 9],
      logprobs: [],
      advantage: 0.5,
    },
    {
      role: "challenger" as const,
      prompt: [1, 5, 6],
      completion: [10, 11],
      logprobs: [],
      advantage: -0.5,
    },
    {
      role: "solver" as const,
      prompt: [1, 12],
      completion: [13, 14, 2],
      logprobs: [],
      advantage: 1,
    },
    {
      role: "solver" as const,
      prompt: [1, 12],
      completion: [20, 21, 2],
      logprobs: [],
      advantage: -1,
    },
    {
      role: "solver" as const,
      prompt: [1, 30, 31],
      completion: [33, 2],
      logprobs: [],
      advantage: 0.25,
    },
    {
      role: "solver" as const,
      prompt: [1, 30, 31],
      completion: [40, 41],
      logprobs: [],
      advantage: -0.25,
    },
  ].map((s) => ({ ...s, logprobs: s.completion.map(() => 0) }));
  // Fill in the true log-probs (as generation would have recorded them).
  const probe = packRollouts(seqs, 1, 0);
  const order = probe.map((mb) => ({ role: mb.roles[0], adv: mb.advantages[0] }));
  const before = await sequenceLogps(model, probe);
  const mbs = packRollouts(seqs, 4, 0);
  for (const mb of mbs) {
    const pass = new ForwardPass(model, mb.batch, mb.seqLen);
    const rec = new Recorder(gpu);
    const o = pass.forwardLogprobs(rec, mb.tokens, mb.targets);
    const read = rec.read(o.logp, 0, mb.batch * mb.seqLen * 4);
    await rec.submit();
    mb.genLogp = new Float32Array(await read).map((x, i) => mb.mask[i] ? x : 0);
    mb.refLogp = mb.genLogp;
    pass.destroy();
  }
  const norm = roleNormalizers(seqs, "sequence-sum");
  const opts = {
    beta: 0,
    alphaCh: 1,
    aggregation: "sequence-sum" as const,
    kl: { estimator: "k1" as const, in: "loss" as const },
  };
  let mismatches = 0;
  const r = await trainStep(passPerMicroBatch(model), opt, mbs, 1e-3, (logp, mb) => {
    for (let i = 0; i < logp.length; i++) if (mb.mask[i] && logp[i] !== mb.genLogp[i]) mismatches++;
    return lspMicroLoss(mb, mb.genLogp, norm, opts);
  });
  assert(mismatches === 0, `${mismatches} log-probs differ between passes of different shapes`);
  assert(r.gradNorm > 0);
  const after = await sequenceLogps(model, probe);
  let surrogate = 0;
  order.forEach((o, k) => (surrogate += o.adv * (after[k] - before[k])));
  assert(surrogate > 0, `sum A * d log pi = ${surrogate}`);
  // The two solver answers to the first query: the rewarded one gains on the other.
  const iPos = order.findIndex((o) => o.role === "solver" && o.adv === 1);
  const iNeg = order.findIndex((o) => o.role === "solver" && o.adv === -1);
  assert(after[iPos] - before[iPos] > after[iNeg] - before[iNeg]);
});
