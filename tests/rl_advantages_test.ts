import assert from "node:assert/strict";
import { centre, lspAdvantages } from "../lib/rl/advantages.ts";

const close = (a: number[], b: number[]) =>
  a.forEach((x, i) => assert.ok(Math.abs(x - b[i]) < 1e-12, `${a} vs ${b}`));

Deno.test("LSP-Zero advantages by hand: solver centred per query, challenger Vbar - V", () => {
  // N=2 queries, G=3 answers.
  const R = [[1, 0, 0.5], [0.2, 0.2, 0.2]];
  const a = lspAdvantages(R, null);
  close(a.queryValue, [0.5, 0.2]);
  close(a.solver[0], [0.5, -0.5, 0]);
  close(a.solver[1], [0, 0, 0]);
  // Vbar = 0.35: A_ch = Vbar - V = [-0.15, 0.15]
  close(a.challenger, [-0.15, 0.15]);
  close(a.challengerReward, [-0.5, -0.2]);
  assert.equal(a.selfValue, null);
  assert.equal(a.zeroVarianceShare, 0.5);
});

Deno.test("LSP advantages with self-reward: R + RQ for the solver, -V + V_Q for the challenger", () => {
  const R = [[1, 0], [0, 0]];
  const RQ = [[7, 3], [2, 4]];
  const a = lspAdvantages(R, RQ);
  // solver totals [[8,3],[2,4]] -> centred [[2.5,-2.5],[-1,1]]
  close(a.solver[0], [2.5, -2.5]);
  close(a.solver[1], [-1, 1]);
  // V = [0.5, 0], V_Q = [5, 3]; challenger reward = [4.5, 3]; centred [0.75, -0.75]
  close(a.selfValue!, [5, 3]);
  close(a.challengerReward, [4.5, 3]);
  close(a.challenger, [0.75, -0.75]);
  assert.equal(a.zeroVarianceShare, 0);
});

Deno.test("std normalisation divides by the group's sample std + 1e-4, as TRL's scale_rewards", () => {
  // [0, 2]: mean 1, sample std sqrt(2) (N - 1 in the denominator, as torch.std).
  close(centre([0, 2], "std", 0), [-1 / Math.SQRT2, 1 / Math.SQRT2]);
  close(centre([0, 2], "std"), [-1 / (Math.SQRT2 + 1e-4), 1 / (Math.SQRT2 + 1e-4)]);
  close(centre([1, 1], "std"), [0, 0]);
  close(centre([3, 0, 0], "std", 0), [2 / Math.sqrt(3), -1 / Math.sqrt(3), -1 / Math.sqrt(3)]);
});

Deno.test("ragged or non-finite rewards are refused with their position", () => {
  assert.throws(() => lspAdvantages([[1, 2], [3]], null), /taskReward\[1\]/);
  assert.throws(() => lspAdvantages([[1, NaN]], null), /taskReward\[0\]\[1\]/);
  assert.throws(() => lspAdvantages([[1, 2]], [[1, 2], [3, 4]]), /selfReward/);
  assert.throws(() => lspAdvantages([], null), /no queries/);
});
