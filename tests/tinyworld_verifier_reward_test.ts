import assert from "node:assert/strict";
import { Rng } from "../lib/tinyworld/prng.ts";
import { generateTask } from "../lib/tinyworld/tasks.ts";
import { TinyVerifierReward } from "../lib/tinyworld/reward.ts";
import { VerifierTaskReward } from "../lib/tinyworld/verifier_task_reward.ts";
import { scoreChecked, type TaskReward } from "../lib/rewards/reward.ts";

Deno.test("verifier reward: exact answers 1, wrong 0, malformed queries by policy", async () => {
  const rng = new Rng(5);
  const add = generateTask(rng, "add", 2), rev = generateTask(rng, "reverse", 1);
  const items = [
    { query: add.text, answer: add.answer },
    { query: add.text, answer: add.answer + "1" },
    { query: rev.text, answer: rev.answer },
    { query: "not a task at all", answer: "x" },
  ];
  const r = new VerifierTaskReward();
  assert.equal(r.name, "verifier");
  assert.deepEqual(await r.score(items), [1, 0, 1, 1]);
  const zero = new VerifierTaskReward({ malformedQuery: "zero" });
  assert.deepEqual(await zero.score(items), [1, 0, 1, 0]);
  // Wrapping an existing verifier keeps its options.
  const wrapped = new VerifierTaskReward(new TinyVerifierReward({ malformedQuery: "zero" }));
  assert.equal(wrapped.verifier.malformedQuery, "zero");
  assert.deepEqual(await scoreChecked(wrapped, items), [1, 0, 1, 0]);
  assert.deepEqual(await r.score([]), []);
  assert.throws(() => new VerifierTaskReward({ partialCredit: 2 }), /partialCredit/);
});

Deno.test("scoreChecked refuses a reward that miscounts or returns non-finite scores", async () => {
  const bad = (scores: number[]): TaskReward => ({
    name: "bad",
    score: () => Promise.resolve(scores),
  });
  const items = [{ query: "q", answer: "a" }, { query: "q", answer: "b" }];
  await assert.rejects(scoreChecked(bad([1]), items), /reward "bad": 1 scores for 2 items/);
  await assert.rejects(scoreChecked(bad([1, NaN]), items), /reward "bad": item 1 scored NaN/);
  assert.deepEqual(await scoreChecked(bad([1, 2]), items), [1, 2]);
});
