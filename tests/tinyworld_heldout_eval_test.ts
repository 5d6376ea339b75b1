/** The whole held-out evaluation through a generator: an exact oracle and a weak baseline. */

import assert from "node:assert/strict";
import { evaluateTinyWorld, formatTinyEval } from "../lib/tinyworld/heldout_eval.ts";
import { gradeWithRubric, judgeCompletion } from "../lib/tinyworld/rubric.ts";
import { parseTask } from "../lib/tinyworld/tasks.ts";
import type { ChatMessage } from "../lib/train/data.ts";

/** A real, exact player of all three roles: solves tasks, grades with the rubric, poses a task. */
function oracle(conversations: ChatMessage[][]): Promise<string[]> {
  return Promise.resolve(conversations.map((c) => {
    const user = c[c.length - 1].content;
    const judge = /\ntask: (.*)\nreply: ([\s\S]*)$/.exec(user);
    if (judge) return judgeCompletion(gradeWithRubric(judge[1], judge[2]));
    const task = parseTask(user);
    if (task.ok) return task.task.answer;
    const family = /Pose one (\w+) task/.exec(user)?.[1] ?? "add";
    return family === "add" ? "add: 12 30" : `${family}: ?`;
  }));
}

Deno.test("evaluateTinyWorld: the oracle scores 100% solver and judge", async () => {
  const r = await evaluateTinyWorld(oracle, { perCell: 2, judgeCases: 30, challengerSamples: 14 });
  assert.equal(r.solver.overall.n, 60);
  assert.equal(r.solver.overall.accuracy, 1);
  assert.equal(r.judge!.agreement, 1);
  // Only the open prompts and "add" get a valid task from this oracle: 2 + 2 of 14.
  assert.equal(r.challenger!.wellFormed, 4);
  const text = formatTinyEval(r);
  assert.match(text, /level 5 +100\.0%/);
  assert.match(text, /judge: agreement 100\.0%/);
  assert.match(text, /challenger: well-formed 28\.6%/);
});

Deno.test("evaluateTinyWorld: a constant answer is weak, skipping roles and bad generators", async () => {
  const constant = (c: ChatMessage[][]) => Promise.resolve(c.map(() => "1"));
  const r = await evaluateTinyWorld(constant, { perCell: 2, judgeCases: 0, challengerSamples: 0 });
  assert.ok(r.solver.overall.accuracy < 0.2);
  assert.equal(r.judge, null);
  assert.equal(r.challenger, null);
  const short = (c: ChatMessage[][]) => Promise.resolve(c.slice(1).map(() => ""));
  await assert.rejects(() => evaluateTinyWorld(short, { perCell: 1 }), /returned 29 texts for 30/);
});
