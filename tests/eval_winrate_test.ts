import assert from "node:assert/strict";
import { meanWithError, pairOutcome, winRates } from "../lib/eval/winrate.ts";

Deno.test("pair outcomes: win, tie counts half, loss", () => {
  assert.equal(pairOutcome(2, 1), 1);
  assert.equal(pairOutcome(1, 1), 0.5);
  assert.equal(pairOutcome(0, 1), 0);
});

Deno.test("win rates overall and per subset with standard errors", () => {
  const w = winRates([
    { subset: "koala", policyScore: 3, baseScore: 1 },
    { subset: "koala", policyScore: 1, baseScore: 1 },
    { subset: "oasst", policyScore: 0, baseScore: 2 },
    { subset: "oasst", policyScore: 5, baseScore: 2 },
  ]);
  assert.equal(w.overall.mean, 2.5 / 4);
  assert.deepEqual(Object.keys(w.perSubset), ["koala", "oasst"]);
  assert.equal(w.perSubset.koala.mean, 0.75);
  assert.equal(w.perSubset.oasst.mean, 0.5);
  assert.deepEqual([w.wins, w.ties, w.losses], [2, 1, 1]);
  // outcomes [1, .5, 0, 1]: mean .625, sample var = (.140625+.015625+.390625+.140625)/3
  const se = Math.sqrt((0.140625 + 0.015625 + 0.390625 + 0.140625) / 3 / 4);
  assert.ok(Math.abs(w.overall.se - se) < 1e-12);
  assert.deepEqual(meanWithError([1]), { mean: 1, se: 0, n: 1 });
});
