/** The verifier reward R(q, a) and its malformed-query policy. */

import assert from "node:assert/strict";
import { TinyVerifierReward } from "../lib/tinyworld/reward.ts";

Deno.test("verifier reward: 1 for the exact answer, 0 otherwise", () => {
  const r = new TinyVerifierReward();
  assert.equal(r.score("add: 2 3", "5"), 1);
  assert.equal(r.score("add: 2 3", " 5\n"), 1);
  assert.equal(r.score("add: 2 3", "6"), 0);
  assert.equal(r.score("add: 2 3", "05"), 0);
  assert.equal(r.score("add: 2 3", ""), 0);
  assert.equal(r.score("reverse: abc", "cba"), 1);
  assert.equal(r.score("reverse: abc", "CBA"), 0);
  assert.equal(r.score("add: 123456 1", "123457"), 1, "beyond-range tasks are scored normally");
  assert.deepEqual(r.scoreGroups(["sort: 2 1", "max: 1 2"], [["1 2", "2 1"], ["2"]]), [[1, 0], [
    1,
  ]]);
  assert.throws(() => r.scoreGroups(["a"], []), /1 queries but 0 answer groups/);
});

Deno.test("malformed queries: 'max' makes them the challenger's worst move, zero solver signal", () => {
  const r = new TinyVerifierReward();
  const answers = ["", "5", "garbage"];
  const rewards = r.scoreGroups(["add: 2"], [answers])[0];
  assert.deepEqual(rewards, [1, 1, 1]);
  const value = rewards.reduce((a, b) => a + b) / rewards.length;
  assert.equal(value, 1, "V(q) = 1: challenger reward -V(q) is the minimum");
  assert.ok(rewards.every((x) => x === value), "all answers tie: zero solver advantage");
  assert.deepEqual(r.detail("hello", "x"), { reward: 1, queryWellFormed: false, exact: false });
  const zero = new TinyVerifierReward({ malformedQuery: "zero" });
  assert.equal(zero.score("add: 2", "5"), 0);
  assert.throws(
    () => new TinyVerifierReward({ malformedQuery: "min" as "max" }),
    /malformedQuery must be "max" or "zero"/,
  );
});

Deno.test("partial credit for answers right up to form", () => {
  const r = new TinyVerifierReward({ partialCredit: 0.5 });
  assert.equal(r.score("add: 2 3", "5"), 1);
  assert.equal(r.score("add: 2 3", "05"), 0.5);
  assert.equal(r.score("sort: 3 1 2", "1, 2, 3"), 0.5);
  assert.equal(r.score("reverse: abc", "CBA\nthanks"), 0.5);
  assert.equal(r.score("add: 2 3", "6"), 0);
  assert.throws(() => new TinyVerifierReward({ partialCredit: 2 }), /partialCredit/);
});
