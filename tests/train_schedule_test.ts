import assert from "node:assert/strict";
import { lrAt, validateSchedule } from "../lib/train/schedule.ts";

Deno.test("constant schedule with warm-up", () => {
  const s = { kind: "constant" as const, lr: 1e-3, warmupSteps: 4 };
  assert.deepEqual([1, 2, 3, 4, 5, 100].map((t) => lrAt(s, t)), [
    2.5e-4,
    5e-4,
    7.5e-4,
    1e-3,
    1e-3,
    1e-3,
  ]);
  assert.equal(lrAt({ kind: "constant", lr: 3e-6 }, 1), 3e-6);
});

Deno.test("linear warm-up then cosine to minLr", () => {
  const s = { kind: "cosine" as const, lr: 1, warmupSteps: 2, totalSteps: 12, minLr: 0.1 };
  assert.equal(lrAt(s, 1), 0.5);
  assert.equal(lrAt(s, 2), 1);
  // Half-way through the decay the cosine is at its midpoint.
  assert.ok(Math.abs(lrAt(s, 7) - 0.55) < 1e-12);
  assert.ok(Math.abs(lrAt(s, 12) - 0.1) < 1e-12);
  assert.ok(Math.abs(lrAt(s, 50) - 0.1) < 1e-12);
  for (let t = 3; t < 12; t++) assert.ok(lrAt(s, t + 1) < lrAt(s, t));
});

Deno.test("schedules are validated with the field named", () => {
  assert.throws(() => lrAt({ kind: "constant", lr: 1 }, 0), /step must be >= 1/);
  assert.throws(
    () => validateSchedule({ kind: "cosine", lr: 1, totalSteps: 0 }, "x.jsonc: optimizer.lr"),
    /x.jsonc: optimizer.lr: totalSteps/,
  );
  assert.throws(
    () => validateSchedule({ kind: "cosine", lr: 1, totalSteps: 5, minLr: 2 }, "m"),
    /minLr/,
  );
});
