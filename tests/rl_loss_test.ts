// The LSP losses' per-token dlogp coefficients and values against hand-computed small cases.
import { assert, assertAlmostEquals, assertEquals, assertThrows } from "./rl_asserts.ts";
import {
  countLogprobMismatches,
  lspMicroLoss,
  packRollouts,
  roleNormalizers,
  type RolloutSequence,
} from "../lib/rl/lsp_loss.ts";

// N = 2 queries (challenger rows), G = 2 answers each (4 solver rows).
const PAD = 0;
function rollouts(): RolloutSequence[] {
  return [
    { role: "challenger", prompt: [1, 2], completion: [3, 4], logprobs: [-1, -2], advantage: 0.1 },
    { role: "challenger", prompt: [1, 2], completion: [5], logprobs: [-0.5], advantage: -0.1 },
    { role: "solver", prompt: [1, 6], completion: [7, 8], logprobs: [-1, -1], advantage: 0.5 },
    { role: "solver", prompt: [1, 6], completion: [9], logprobs: [-2], advantage: -0.5 },
    { role: "solver", prompt: [1, 7, 7], completion: [3], logprobs: [-3], advantage: 0.25 },
    {
      role: "solver",
      prompt: [1, 7, 7],
      completion: [4, 4, 4],
      logprobs: [-1, -1, -1],
      advantage: -0.25,
    },
  ];
}
/** Reference log-prob = generation log-prob - 0.5 everywhere (so k1 KL = 0.5 per token). */
function withRef(mbs: ReturnType<typeof packRollouts>) {
  for (const mb of mbs) {
    mb.refLogp = mb.genLogp.map((x, i) => mb.mask[i] ? x - 0.5 : 0);
  }
  return mbs;
}
/** dlogp of every completion token, per rollout, summed over micro-batches. */
function perRolloutDlogp(
  seqs: RolloutSequence[],
  opts: Parameters<typeof lspMicroLoss>[3],
  rows: number,
) {
  const S = 6;
  const mbs = withRef(packRollouts(seqs, rows, PAD, S));
  const norm = roleNormalizers(seqs, opts.aggregation);
  let loss = 0;
  const out: number[][] = [];
  mbs.forEach((mb, m) => {
    const r = lspMicroLoss(mb, mb.genLogp, norm, opts);
    loss += r.loss;
    for (let b = 0; b < mb.roles.length; b++) {
      const s = seqs[m * rows + b];
      const first = s.prompt.length - 1;
      out.push(s.completion.map((_, k) => r.dlogp[b * S + first + k]));
      // Nothing outside the completion is scored.
      for (let t = 0; t < S; t++) {
        if (t < first || t >= first + s.completion.length) assertEquals(r.dlogp[b * S + t], 0);
      }
    }
  });
  return { loss, out };
}

Deno.test("sequence-sum, k1: dlogp = -(A - beta)/NG for the solver, -alpha(A - beta)/N for the challenger", () => {
  const beta = 0.05, alpha = 0.5;
  for (const rows of [6, 4, 1]) {
    const { loss, out } = perRolloutDlogp(rollouts(), {
      beta,
      alphaCh: alpha,
      aggregation: "sequence-sum",
      kl: { estimator: "k1", in: "loss" },
    }, rows);
    const want = [
      [-0.0125, -0.0125], // -0.5 * (0.1 - 0.05) / 2
      [0.0375], // -0.5 * (-0.1 - 0.05) / 2
      [-0.1125, -0.1125], // -(0.5 - 0.05) / 4
      [0.1375], // -(-0.5 - 0.05) / 4
      [-0.05], // -(0.25 - 0.05) / 4
      [0.075, 0.075, 0.075], // -(-0.25 - 0.05) / 4
    ];
    out.forEach((row, i) => row.forEach((d, k) => assertAlmostEquals(d, want[i][k], 1e-7)));
    // L_sol = -(1/4) sum [A * sum lp - beta * sum (lp - ref)], every token's lp - ref = 0.5.
    const lsol = -(0.5 * -2 - beta * 1 + -0.5 * -2 - beta * 0.5 + 0.25 * -3 - beta * 0.5 +
      -0.25 * -3 - beta * 1.5) / 4;
    const lch = -(0.1 * -3 - beta * 1 + -0.1 * -0.5 - beta * 0.5) / 2;
    assertAlmostEquals(loss, lsol + alpha * lch, 1e-9);
  }
});

Deno.test("sequence-sum, k3: the KL gradient is beta * (1 - exp(ref - logp))", () => {
  const beta = 0.05;
  const { out } = perRolloutDlogp(rollouts(), {
    beta,
    alphaCh: 1,
    aggregation: "sequence-sum",
    kl: { estimator: "k3", in: "loss" },
  }, 6);
  const g = 1 - Math.exp(-0.5); // ref - logp = -0.5 at every token
  assertAlmostEquals(out[2][0], -(0.5 - beta * g) / 4, 1e-7);
  assertAlmostEquals(out[3][0], -(-0.5 - beta * g) / 4, 1e-7);
  assertAlmostEquals(out[0][1], -(0.1 - beta * g) / 2, 1e-7);
});

Deno.test("token-mean: each role is divided by its own scored-token count", () => {
  const seqs = rollouts();
  const norm = roleNormalizers(seqs, "token-mean");
  assertEquals(norm, { solver: 7, challenger: 3 });
  assertEquals(roleNormalizers(seqs, "sequence-sum"), { solver: 4, challenger: 2 });
  const { out } = perRolloutDlogp(seqs, {
    beta: 0,
    alphaCh: 2,
    aggregation: "token-mean",
    kl: { estimator: "k1", in: "loss" },
  }, 4);
  assertAlmostEquals(out[2][1], -0.5 / 7, 1e-7);
  assertAlmostEquals(out[5][2], 0.25 / 7, 1e-7);
  assertAlmostEquals(out[0][0], -2 * 0.1 / 3, 1e-7);
  assertAlmostEquals(out[1][0], 2 * 0.1 / 3, 1e-7);
});

Deno.test("GRPO (solver rows only): no challenger term; reference required when beta > 0", () => {
  const seqs = rollouts().filter((s) => s.role === "solver");
  const mbs = packRollouts(seqs, 4, PAD, 6);
  const norm = roleNormalizers(seqs, "sequence-sum");
  const r = lspMicroLoss(mbs[0], mbs[0].genLogp, norm, {
    beta: 0,
    alphaCh: 1,
    aggregation: "sequence-sum",
    kl: { estimator: "k1", in: "loss" },
  });
  assertEquals(r.challenger, { loss: 0, klSum: 0, tokens: 0 });
  assertEquals(r.solver.tokens, 7);
  assertThrows(
    () =>
      lspMicroLoss(mbs[0], mbs[0].genLogp, norm, {
        beta: 0.1,
        alphaCh: 1,
        aggregation: "sequence-sum",
        kl: { estimator: "k1", in: "loss" },
      }),
    Error,
    "reference log-probs missing",
  );
});

Deno.test("packRollouts places generation log-probs at the positions that predict them", () => {
  const mbs = packRollouts(rollouts(), 4, PAD, 6);
  assertEquals(mbs.length, 2);
  assertEquals(mbs[1].batch, 2); // the last micro-batch holds the two remaining rows
  assertEquals(mbs[1].roles.length, 2);
  // Row 0: prompt [1,2], completion [3,4]: positions 1 and 2 predict 3 and 4.
  assertEquals([...mbs[0].targets.subarray(1, 3)], [3, 4]);
  assertEquals([...mbs[0].mask.subarray(0, 6)], [0, 1, 1, 0, 0, 0]);
  assertEquals([...mbs[0].genLogp.subarray(0, 4)], [0, -1, -2, 0]);
  const exact = countLogprobMismatches(mbs[0], mbs[0].genLogp);
  assertEquals(exact, { mismatches: 0, maxAbsDiff: 0, compared: 6 });
  const off = mbs[0].genLogp.slice();
  off[1] = Math.fround(-1 + 2 ** -20);
  const m = countLogprobMismatches(mbs[0], off);
  assertEquals(m.mismatches, 1);
  assert(m.maxAbsDiff > 0);
  assertThrows(
    () => packRollouts([{ ...rollouts()[0], logprobs: [-1] }], 2, PAD),
    Error,
    "1 log-probs for 2 tokens",
  );
});

Deno.test("packRollouts without seqLen: longest first, each micro-batch padded to its own rows", () => {
  const seqs = rollouts();
  const mbs = packRollouts(seqs, 2, PAD);
  // Lengths: 4, 3, 4, 3, 4, 6 -> sorted (stable) 6, 4, 4, 4, 3, 3.
  assertEquals(mbs.map((m) => m.seqLen), [6, 4, 3]);
  assertEquals(mbs[0].advantages, [-0.25, 0.1]);
  assertEquals(mbs[2].roles, ["challenger", "solver"]);
  // Nothing is lost: the loss over the regrouped batches equals the fixed-shape one.
  const opts = {
    beta: 0,
    alphaCh: 0.5,
    aggregation: "sequence-sum" as const,
    kl: { estimator: "k1" as const, in: "loss" as const },
  };
  const norm = roleNormalizers(seqs, "sequence-sum");
  const total = (xs: ReturnType<typeof packRollouts>) =>
    xs.reduce((a, mb) => a + lspMicroLoss(mb, mb.genLogp, norm, opts).loss, 0);
  assertAlmostEquals(total(mbs), total(packRollouts(seqs, 6, PAD, 6)), 1e-12);
});
