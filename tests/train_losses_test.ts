import assert from "node:assert/strict";
import { klTerm, meanNll, policyLoss, type PolicyLossInput } from "../lib/train/losses.ts";
import { packPromptCompletions, packScored } from "../lib/train/batch.ts";
import { randn } from "./helpers.ts";

const near = (a: number, b: number, tol = 1e-6) =>
  assert.ok(Math.abs(a - b) <= tol * (1 + Math.abs(b)), `${a} != ${b}`);

Deno.test("packPromptCompletions masks prompts and padding, targets are the next tokens", () => {
  const p = packPromptCompletions([{ prompt: [1, 2], completion: [3, 4] }, {
    prompt: [5],
    completion: [6],
  }], 0);
  assert.equal(p.seqLen, 4);
  assert.deepEqual(Array.from(p.tokens), [1, 2, 3, 4, 5, 6, 0, 0]);
  assert.deepEqual(Array.from(p.targets), [2, 3, 4, 0, 6, 0, 0, 0]);
  // Row 0: positions 1 and 2 predict the completion tokens 3 and 4.
  assert.deepEqual(Array.from(p.mask), [0, 1, 1, 0, 1, 0, 0, 0]);
  assert.deepEqual(p.scoredCounts, [2, 1]);
  assert.throws(() => packScored([{ tokens: [1, 2], scored: [false, true] }], 0, 1), /seqLen 1/);
  assert.throws(() => packScored([{ tokens: [1], scored: [true] }], 0), /first token/);
});

Deno.test("mean NLL by hand", () => {
  const logp = new Float32Array([-1, -2, -3, -4]);
  const mask = new Float32Array([1, 0, 1, 1]);
  const r = meanNll(logp, mask, 2, 2);
  near(r.loss, (1 + 3 + 4) / 3);
  assert.deepEqual(Array.from(r.dlogp), [-1 / 3, 0, -1 / 3, -1 / 3].map(Math.fround));
  assert.equal(r.tokens, 3);
  // With a step-wide normalizer of 6 tokens the share halves.
  near(meanNll(logp, mask, 2, 2, 6).loss, 8 / 6);
});

Deno.test("LSP sequence-sum loss with k1 KL by hand", () => {
  // Two sequences of 2 positions; advantages +0.5 and -0.5; beta 0.1.
  const logp = new Float32Array([-1, -2, -0.5, -0.25]);
  const ref = new Float32Array([-1.5, -1, -0.5, -1]);
  const mask = new Float32Array([1, 1, 0, 1]);
  const r = policyLoss({
    logp,
    mask,
    refLogp: ref,
    batch: 2,
    seqLen: 2,
    weights: [0.5, -0.5],
    klCoef: 0.1,
    klEstimator: "k1",
    aggregation: "sequence-sum",
  });
  // L = -(1/2) [ 0.5*(-3) - 0.1*((-1+1.5)+(-2+1)) + (-0.5)*(-0.25) - 0.1*(-0.25+1) ]
  const want = -0.5 * (0.5 * -3 - 0.1 * (0.5 - 1) + -0.5 * -0.25 - 0.1 * 0.75);
  near(r.loss, want);
  assert.deepEqual(
    Array.from(r.dlogp),
    [-0.5 * (0.5 - 0.1), -0.5 * (0.5 - 0.1), 0, -0.5 * (-0.5 - 0.1)].map(Math.fround),
  );
  near(r.klMean, (0.5 - 1 + 0.75) / 3);
  assert.deepEqual(r.sequenceLogp, [-3, -0.25]);
});

Deno.test("k3 estimator is non-negative, zero at equality, with the right slope", () => {
  assert.deepEqual(klTerm(-1, -1, "k3"), { value: 0, grad: 0 });
  const k = klTerm(-1, -2, "k3"); // r = -1
  near(k.value, Math.exp(-1) + 1 - 1);
  near(k.grad, 1 - Math.exp(-1));
  assert.ok(klTerm(-3, -1, "k3").value > 0);
});

Deno.test("k2 estimator: half the squared log-ratio, slope the log-ratio", () => {
  assert.deepEqual(klTerm(-1, -1, "k2"), { value: 0, grad: 0 });
  const k = klTerm(-1, -2.5, "k2"); // lr = 1.5
  near(k.value, 1.125);
  near(k.grad, 1.5);
  near(klTerm(-2.5, -1, "k2").grad, -1.5);
});

Deno.test("token-mean-per-sequence: each sequence's token mean, then the mean over sequences", () => {
  // Two rows: 2 scored tokens and 1 scored token; weights 1 and -1; no KL.
  const logp = Float32Array.from([0, -1, -2, 0, -4, 0]);
  const mask = Float32Array.from([0, 1, 1, 0, 1, 0]);
  const r = policyLoss({
    logp,
    mask,
    batch: 2,
    seqLen: 3,
    weights: [1, -1],
    aggregation: "token-mean-per-sequence",
  });
  // L = -(1/2) [ (1/2)(-1 - 2) * 1 + (1/1)(-4) * -1 ] = -(1/2)(-1.5 + 4) = -1.25
  near(r.loss, -1.25);
  assert.deepEqual(Array.from(r.dlogp), [0, -0.25, -0.25, 0, 0.5, 0]);
});

Deno.test("dlogp equals the finite-difference derivative for every configuration", () => {
  const B = 3, S = 5, n = B * S;
  const logp = randn(n, 7).map((x) => -Math.abs(x) - 0.1);
  const ref = randn(n, 8).map((x) => -Math.abs(x) - 0.1);
  const mask = new Float32Array(n).map((_, i) => (i % S === 0 || i % 4 === 3 ? 0 : 1));
  for (const aggregation of ["sequence-sum", "token-mean-per-sequence", "token-mean"] as const) {
    for (const klEstimator of ["k1", "k2", "k3"] as const) {
      const base: PolicyLossInput = {
        logp,
        mask,
        refLogp: ref,
        batch: B,
        seqLen: S,
        weights: [0.7, -1.2, 0.3],
        klCoef: 0.05,
        klEstimator,
        aggregation,
        scale: 0.8,
      };
      const r = policyLoss(base);
      const h = 1e-3;
      for (let i = 0; i < n; i++) {
        const up = Float64Array.from(logp), dn = Float64Array.from(logp);
        up[i] += h;
        dn[i] -= h;
        // Perturbed values stay f64 so the central difference is not swamped by f32 rounding.
        const fd = (lossF64(base, up) - lossF64(base, dn)) / (2 * h);
        assert.ok(
          Math.abs(fd - r.dlogp[i]) < 1e-5,
          `${aggregation}/${klEstimator} [${i}]: fd ${fd} vs ${r.dlogp[i]}`,
        );
      }
    }
  }
});

/** policyLoss evaluated on f64 log-probs (the implementation reads values through indexing). */
function lossF64(base: PolicyLossInput, logp: Float64Array): number {
  return policyLoss({ ...base, logp: logp as unknown as Float32Array }).loss;
}

Deno.test("bad inputs are refused with clear messages", () => {
  const z = new Float32Array(4);
  assert.throws(
    () => policyLoss({ logp: z, mask: z, batch: 2, seqLen: 3, aggregation: "token-mean" }),
    /logp has 4 values, want 6/,
  );
  assert.throws(
    () => policyLoss({ logp: z, mask: z, batch: 2, seqLen: 2, aggregation: "token-mean" }),
    /normalizer must be positive/,
  );
  assert.throws(
    () =>
      policyLoss({
        logp: z,
        mask: z,
        batch: 2,
        seqLen: 2,
        klCoef: 0.1,
        aggregation: "sequence-sum",
      }),
    /refLogp is missing/,
  );
});
