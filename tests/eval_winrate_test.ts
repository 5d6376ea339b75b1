import assert from "node:assert/strict";
import { meanWithError, pairOutcome, softWinRates, winRates } from "../lib/eval/winrate.ts";

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

Deno.test("soft win rates: the mean preference with SE; wins, ties and losses around 0.5", () => {
  const r = softWinRates([
    { subset: "b", preference: 0.9 },
    { subset: "a", preference: 0.5 },
    { subset: "b", preference: 0.2 },
    { subset: "a", preference: 0.7 },
  ]);
  assert.ok(Math.abs(r.overall.mean - 0.575) < 1e-15);
  assert.deepEqual([r.wins, r.ties, r.losses], [2, 1, 1]);
  assert.deepEqual(Object.keys(r.perSubset), ["a", "b"]);
  assert.ok(Math.abs(r.perSubset.a.mean - 0.6) < 1e-15);
  const sd = Math.sqrt(((0.9 - 0.575) ** 2 + 0.075 ** 2 + 0.375 ** 2 + 0.125 ** 2) / 3);
  assert.ok(Math.abs(r.overall.se - sd / 2) < 1e-15);
  assert.throws(() => softWinRates([{ subset: "a", preference: 1.5 }]), /1.5 is not in \[0, 1\]/);
});
