/**
 * The KL options by what they do to the update, exactly: on a tabular policy small enough to
 * enumerate every sequence (3 tokens, length 2) and every group of samples, the expected update
 * sum_t dlogp_t * grad log pi(x_t | x<t) (what the backward applies) of our loss code is compared
 * with the analytic gradient of the KL each option claims (lib/rl/kl.ts), computed independently
 * by finite differences of exact KL values:
 *
 * - k1 in the loss: zero, whatever the reference (the paper read literally);
 * - k2 in the loss: beta * grad sum_p w_p KL(pi(.|p) || ref(.|p)), the per-position KL with the
 *   prefix weights w_p = P(prefix p) held fixed;
 * - k3 in the loss: beta * grad sum_p w_p KL(ref(.|p) || pi(.|p));
 * - k1 in the reward: (1 - 1/G) * beta * grad KL(pi || ref) of whole sequences, through the
 *   advantages' group-mean baseline (G answers for the solver, N queries for the challenger).
 *
 * Each for the solver and the challenger (alpha_ch scales it).
 */
import { assert, assertAlmostEquals } from "./rl_asserts.ts";
import { lspAdvantages, type RewardPenalty } from "../lib/rl/advantages.ts";
import { type KlOptions, sequenceKl } from "../lib/rl/kl.ts";
import {
  lspMicroLoss,
  packRollouts,
  referenceLogprobs,
  type Role,
  roleNormalizers,
  type RolloutSequence,
} from "../lib/rl/lsp_loss.ts";
import type { Aggregation } from "../lib/train/losses.ts";

const V = 3, T = 2, PAD = 0, PROMPT = [V + 1];
/** Prefixes of length < T in a fixed order: "", "0", "1", "2". */
const PREFIXES = ["", ...Array.from({ length: V }, (_, a) => String(a))];
const P = PREFIXES.length;
const prefixIndex = (ys: number[]) => PREFIXES.indexOf(ys.join(""));

/** Logits [P][V] of a tabular policy over (prefix, next token). */
type Table = number[][];

function logSoftmax(row: number[]): number[] {
  const m = Math.max(...row);
  const z = Math.log(row.reduce((a, x) => a + Math.exp(x - m), 0)) + m;
  return row.map((x) => x - z);
}

/** log pi(y_t | y<t) of every token of `ys`. */
function tokenLogps(table: Table, ys: number[]): number[] {
  return ys.map((y, t) => logSoftmax(table[prefixIndex(ys.slice(0, t))])[y]);
}

/** Every sequence of length T with its probability under `table`. */
function sequences(table: Table): { ys: number[]; p: number }[] {
  const out: { ys: number[]; p: number }[] = [];
  for (let s = 0; s < V ** T; s++) {
    const ys = Array.from({ length: T }, (_, t) => Math.floor(s / V ** (T - 1 - t)) % V);
    out.push({ ys, p: Math.exp(tokenLogps(table, ys).reduce((a, b) => a + b, 0)) });
  }
  return out;
}

/** Adds w * grad_theta log pi(y_t | y<t) for every token of `ys` into `g` [P*V]. */
function addScore(g: Float64Array, table: Table, ys: number[], dlogp: number[]): void {
  ys.forEach((y, t) => {
    const p = prefixIndex(ys.slice(0, t));
    const probs = logSoftmax(table[p]).map(Math.exp);
    for (let v = 0; v < V; v++) g[p * V + v] += dlogp[t] * ((v === y ? 1 : 0) - probs[v]);
  });
}

/** Central finite differences of a scalar function of the table (f64). */
function fdGrad(f: (t: Table) => number, table: Table, h = 1e-5): Float64Array {
  const g = new Float64Array(P * V);
  for (let i = 0; i < P * V; i++) {
    const up = table.map((r) => [...r]), dn = table.map((r) => [...r]);
    up[Math.floor(i / V)][i % V] += h;
    dn[Math.floor(i / V)][i % V] -= h;
    g[i] = (f(up) - f(dn)) / (2 * h);
  }
  return g;
}

const kl = (p: number[], q: number[]) => p.reduce((a, pi, i) => a + pi * Math.log(pi / q[i]), 0);
const probsOf = (row: number[]) => logSoftmax(row).map(Math.exp);

/** KL(pi || ref) of whole sequences, by enumeration. */
function sequenceKlExact(theta: Table, ref: Table): number {
  return sequences(theta).reduce((a, { ys, p }) => {
    const lp = tokenLogps(theta, ys).reduce((x, y) => x + y, 0);
    const lr = tokenLogps(ref, ys).reduce((x, y) => x + y, 0);
    return a + p * (lp - lr);
  }, 0);
}

/** sum_p w_p KL_p with the prefix weights w fixed at theta0 (forward or reverse per position). */
function perPositionKl(theta0: Table, ref: Table, reverse: boolean): (t: Table) => number {
  // w_p: the probability that prefix p occurs (at its length) under theta0.
  const w = PREFIXES.map((s) => {
    const ys = s === "" ? [] : s.split("").map(Number);
    return Math.exp(tokenLogps(theta0, ys).reduce((a, b) => a + b, 0));
  });
  return (theta) =>
    PREFIXES.reduce((a, _, p) => {
      const pi = probsOf(theta[p]), r = probsOf(ref[p]);
      return a + w[p] * (reverse ? kl(r, pi) : kl(pi, r));
    }, 0);
}

function rollout(role: Role, theta: Table, ys: number[], advantage = 0): RolloutSequence {
  return {
    role,
    prompt: PROMPT,
    completion: ys.map((y) => y + 1),
    logprobs: tokenLogps(theta, ys),
    advantage,
  };
}

/** Fills a packed micro-batch's reference log-probs from the reference table. */
function scoreWithRef(
  mb: ReturnType<typeof packRollouts>[number],
  seqs: RolloutSequence[],
  ref: Table,
) {
  mb.refLogp = new Float32Array(mb.batch * mb.seqLen);
  mb.seqIndex.forEach((i, b) => {
    const ys = seqs[i].completion.map((x) => x - 1);
    tokenLogps(ref, ys).forEach((
      lp,
      k,
    ) => (mb.refLogp![b * mb.seqLen + PROMPT.length - 1 + k] = lp));
  });
}

/** The per-token dlogp our loss gives each rollout, in rollout order. */
function dlogpOf(
  seqs: RolloutSequence[],
  ref: Table,
  opts: { beta: number; alphaCh: number; aggregation: Aggregation; kl: KlOptions },
): number[][] {
  const micro = packRollouts(seqs, seqs.length, PAD);
  for (const mb of micro) scoreWithRef(mb, seqs, ref);
  const norm = roleNormalizers(seqs, opts.aggregation);
  const out: number[][] = seqs.map(() => []);
  for (const mb of micro) {
    const r = lspMicroLoss(mb, mb.genLogp, norm, opts);
    mb.seqIndex.forEach((i, b) => {
      for (let t = 0; t < mb.seqLen; t++) {
        if (mb.mask[b * mb.seqLen + t] !== 0) out[i].push(r.dlogp[b * mb.seqLen + t]);
      }
    });
  }
  return out;
}

/** E[update] of a KL term in the loss: every sequence alone (rows are independent there). */
function expectedLossUpdate(
  role: Role,
  theta: Table,
  ref: Table,
  kl: KlOptions,
  aggregation: Aggregation = "sequence-sum",
  beta = 0.05,
  alphaCh = 0.5,
): Float64Array {
  const g = new Float64Array(P * V);
  for (const { ys, p } of sequences(theta)) {
    const seqs = [rollout(role, theta, ys)];
    const d = dlogpOf(seqs, ref, { beta, alphaCh, aggregation, kl });
    addScore(g, theta, ys, d[0].map((x) => p * x));
  }
  return g;
}

/**
 * E[update] of k1 in the reward for `size` sequences of one role sharing a group baseline (G
 * answers to one query, or N queries), all task rewards 0: every tuple of sequences enumerated.
 */
function expectedRewardUpdate(
  role: Role,
  theta: Table,
  ref: Table,
  size: number,
  beta = 0.05,
  alphaCh = 0.5,
): Float64Array {
  const opts = {
    beta,
    alphaCh,
    aggregation: "sequence-sum" as const,
    kl: { estimator: "k1", in: "reward" } as const,
  };
  const all = sequences(theta);
  const g = new Float64Array(P * V);
  for (let code = 0; code < all.length ** size; code++) {
    const pick = Array.from(
      { length: size },
      (_, j) => all[Math.floor(code / all.length ** j) % all.length],
    );
    const prob = pick.reduce((a, s) => a * s.p, 1);
    const seqs = pick.map((s) => rollout(role, theta, s.ys));
    // The iteration's path: reference log-probs from the packed rows, the sequence log-ratios,
    // the penalty before advantages, then the loss with no KL term of its own.
    const micro = packRollouts(seqs, seqs.length, PAD);
    for (const mb of micro) scoreWithRef(mb, seqs, ref);
    const refLps = referenceLogprobs(micro, seqs.length);
    const pen = seqs.map((s, i) => beta * sequenceKl(s.logprobs, refLps[i]).k1);
    const penalty: RewardPenalty = role === "solver"
      ? { solver: [pen], challenger: [0] }
      : { solver: pen.map(() => [0, 0]), challenger: pen };
    const R = role === "solver" ? [pen.map(() => 0)] : pen.map(() => [0, 0]);
    const adv = lspAdvantages(R, null, "none", penalty);
    seqs.forEach((
      s,
      i,
    ) => (s.advantage = role === "solver" ? adv.solver[0][i] : adv.challenger[i]));
    const d = dlogpOf(seqs, ref, opts);
    pick.forEach((s, i) => addScore(g, theta, s.ys, d[i].map((x) => prob * x)));
  }
  return g;
}

function close(got: Float64Array, want: Float64Array, what: string, tol = 2e-6): void {
  const scale = Math.max(1e-3, ...Array.from(want, Math.abs));
  for (let i = 0; i < got.length; i++) {
    assert(
      Math.abs(got[i] - want[i]) <= tol * scale,
      `${what} [${i}]: expected update ${got[i]}, analytic ${want[i]}`,
    );
  }
}

const norm = (g: Float64Array) => Math.sqrt(g.reduce((a, x) => a + x * x, 0));
const scaled = (g: Float64Array, c: number) => g.map((x) => x * c);

// A policy and two references, all different, so every KL is non-zero.
const THETA: Table = [[0.3, -0.4, 0.9], [1.1, 0.2, -0.7], [-0.5, 0.8, 0.1], [0.4, 0.4, -1.2]];
const REF: Table = [[-0.2, 0.5, 0.3], [0.1, -0.6, 0.9], [0.7, 0.2, -0.4], [-0.8, 0.3, 0.6]];
const REF2: Table = REF.map((r) => r.map((x, i) => x + (i === 1 ? 1.5 : -0.3)));
const BETA = 0.05, ALPHA = 0.5;

for (const role of ["solver", "challenger"] as const) {
  const c = role === "solver" ? BETA : ALPHA * BETA;

  Deno.test(`${role}: k1 in the loss has a zero expected KL gradient, whatever the reference`, () => {
    const k1 = { estimator: "k1", in: "loss" } as const;
    const g = expectedLossUpdate(role, THETA, REF, k1);
    close(g, new Float64Array(P * V), "k1 in the loss");
    // Shifting every reference log-prob (another reference) leaves the update as it was.
    close(expectedLossUpdate(role, THETA, REF2, k1), g, "k1 in the loss, other reference");
  });

  Deno.test(`${role}: k2 in the loss gives beta * grad of the per-position KL(pi || ref)`, () => {
    const k2 = { estimator: "k2", in: "loss" } as const;
    const want = scaled(fdGrad(perPositionKl(THETA, REF, false), THETA), c);
    assert(norm(want) > 1e-3);
    close(expectedLossUpdate(role, THETA, REF, k2), want, "k2");
    // Per position, not the whole sequence's KL gradient (which also moves earlier tokens).
    const whole = scaled(fdGrad((t) => sequenceKlExact(t, REF), THETA), c);
    assert(norm(want.map((x, i) => x - whole[i])) > 1e-4, "k2 should differ from the sequence KL");
    const other = expectedLossUpdate(role, THETA, REF2, k2);
    close(other, scaled(fdGrad(perPositionKl(THETA, REF2, false), THETA), c), "k2, REF2");
    assert(norm(other.map((x, i) => x - want[i])) > 1e-3, "the reference must change the update");
  });

  Deno.test(`${role}: k3 in the loss gives beta * grad of the per-position KL(ref || pi)`, () => {
    const k3 = { estimator: "k3", in: "loss" } as const;
    const want = scaled(fdGrad(perPositionKl(THETA, REF, true), THETA), c);
    assert(norm(want) > 1e-3);
    close(expectedLossUpdate(role, THETA, REF, k3), want, "k3");
    // The token mean over a step of length-T sequences is the same, divided by T.
    close(expectedLossUpdate(role, THETA, REF, k3, "token-mean"), scaled(want, 1 / T), "k3 tm");
    close(
      expectedLossUpdate(role, THETA, REF, k3, "token-mean-per-sequence"),
      scaled(want, 1 / T),
      "k3 token-mean-per-sequence",
    );
    const other = expectedLossUpdate(role, THETA, REF2, k3);
    assert(norm(other.map((x, i) => x - want[i])) > 1e-3, "the reference must change the update");
  });

  Deno.test(`${role}: k1 in the reward gives (1 - 1/G) * beta * grad KL(pi || ref) of sequences`, () => {
    for (const G of [2, 3]) {
      const exact = fdGrad((t) => sequenceKlExact(t, REF), THETA);
      const want = scaled(exact, (1 - 1 / G) * c);
      assert(norm(want) > 1e-3);
      close(expectedRewardUpdate(role, THETA, REF, G), want, `k1 in the reward, G = ${G}`);
    }
    const other = expectedRewardUpdate(role, THETA, REF2, 2);
    const want2 = scaled(fdGrad((t) => sequenceKlExact(t, REF2), THETA), 0.5 * c);
    close(other, want2, "k1 in the reward, REF2");
    assert(
      norm(
        other.map((x, i) => x - scaled(fdGrad((t) => sequenceKlExact(t, REF), THETA), 0.5 * c)[i]),
      ) > 1e-3,
    );
  });
}

Deno.test("the enumeration is exact: probabilities sum to 1 and the score function has mean 0", () => {
  const all = sequences(THETA);
  assertAlmostEquals(all.reduce((a, s) => a + s.p, 0), 1, 1e-12);
  const g = new Float64Array(P * V);
  for (const { ys, p } of all) addScore(g, THETA, ys, ys.map(() => p));
  close(g, new Float64Array(P * V), "E[grad log pi]", 1e-12);
});
