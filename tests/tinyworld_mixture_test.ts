/** The pretraining mixture: deterministic, index-addressed, capped, three well-formed roles. */

import assert from "node:assert/strict";
import { Rng } from "../lib/tinyworld/prng.ts";
import {
  TINY_DATASET_NAME,
  tinyChatTokens,
  tinyDataset,
  tinyDatasetFactory,
  tinyMixture,
} from "../lib/tinyworld/mixture.ts";
import { generatedDataset } from "../lib/train/data.ts";
// Registers the tiny world's dataset generators (the program loads it through its catalogue).
import "../lib/tinyworld/plugin.ts";
import {
  CANDIDATE_KINDS,
  candidateAnswer,
  drawJudgeCase,
  malformedTask,
} from "../lib/tinyworld/examples.ts";
import { gradeWithRubric, parseJudgeScore, RUBRIC_MAX } from "../lib/tinyworld/rubric.ts";
import { splitOf } from "../lib/tinyworld/split.ts";
import { FAMILY_NAMES, generateTask, MAX_LEVEL, parseTask } from "../lib/tinyworld/tasks.ts";
import { TINY_CHALLENGER_PROMPT } from "../lib/tinyworld/challenger.ts";

const N = 1500;
const examples = tinyMixture({ seed: 5, count: N });

Deno.test("mixture is deterministic, index-addressed and seed-dependent", () => {
  assert.deepEqual(tinyMixture({ seed: 5, count: N }), examples);
  assert.notDeepEqual(tinyMixture({ seed: 6, count: 50 }), examples.slice(0, 50));
  const provider = tinyDataset(5);
  assert.equal(provider.size, null);
  for (const i of [0, 7, 1499, 42, 0]) {
    assert.deepEqual(provider.example(i).messages, examples[i].messages);
  }
});

Deno.test("mixture roles follow the weights and each role is well-formed", () => {
  const count = { solver: 0, challenger: 0, judge: 0 };
  const solverLevels = new Set<number>();
  const challengerLevels = new Set<number>();
  const scores = new Set<number>();
  for (const e of examples) {
    count[e.role]++;
    assert.ok(tinyChatTokens(e) <= 256);
    assert.deepEqual(e.messages.map((m) => m.role), ["user", "assistant"]);
    const [user, assistant] = e.messages.map((m) => m.content);
    if (e.role === "solver") {
      const r = parseTask(user);
      assert.ok(r.ok && r.task.text === user && r.task.answer === assistant);
      assert.ok(r.task.level <= MAX_LEVEL - 1, `solver capped below the hardest: ${user}`);
      assert.equal(splitOf(user), "train");
      solverLevels.add(r.task.level);
    } else if (e.role === "challenger") {
      const r = parseTask(assistant);
      assert.ok(r.ok && r.task.text === assistant);
      assert.equal(splitOf(assistant), "train");
      assert.ok(user.startsWith(TINY_CHALLENGER_PROMPT.slice(0, 20)));
      challengerLevels.add(r.task.level);
    } else {
      const s = parseJudgeScore(assistant);
      assert.equal(s.status, "ok");
      const m = /\ntask: (.*)\nreply: ([\s\S]*)$/.exec(user);
      assert.ok(m, user);
      assert.equal(gradeWithRubric(m[1], m[2]).score, s.score);
      scores.add(s.score);
    }
  }
  assert.ok(Math.abs(count.solver / N - 0.6) < 0.05, JSON.stringify(count));
  assert.ok(Math.abs(count.challenger / N - 0.2) < 0.05, JSON.stringify(count));
  assert.deepEqual([...solverLevels].sort(), [1, 2, 3, 4]);
  assert.deepEqual([...challengerLevels].sort(), [1, 2, 3, 4, 5]);
  assert.ok(scores.size >= 5, `judge scores spread: ${[...scores]}`);
});

Deno.test("mixture options: caps, weights, families; bad input names the field", () => {
  const easy = tinyMixture({
    seed: 1,
    count: 200,
    maxDifficulty: 2,
    weights: { challenger: 0, judge: 0 },
    families: ["add"],
  });
  for (const e of easy) {
    assert.equal(e.role, "solver");
    const r = parseTask(e.messages[0].content);
    assert.ok(r.ok && r.task.family === "add" && r.task.level <= 2);
  }
  assert.throws(() => tinyMixture({ seed: 1, count: 1, maxDifficulty: 6 }), /maxDifficulty/);
  assert.throws(
    () => tinyMixture({ seed: 1, count: 1, weights: { solver: -1 } }),
    /weights.solver/,
  );
  assert.throws(
    () => tinyMixture({ seed: 1, count: 1, weights: { solver: 0, challenger: 0, judge: 0 } }),
    /all zero/,
  );
  assert.throws(() => tinyMixture({ seed: 1, count: -1 }), /count/);
  assert.throws(() => tinyMixture({ seed: 1, count: 1, maxTokens: 10 }), /maxTokens/);
  assert.throws(
    () => tinyDatasetFactory({ maxDifficulty: 3, colour: 1 }, 0),
    /unknown parameter "colour"/,
  );
  assert.throws(
    () => tinyDatasetFactory({ families: ["divide"] }, 0),
    /families: unknown "divide"/,
  );
  assert.throws(() => tinyDatasetFactory({ judgePrompt: 3 }, 0), /judgePrompt must be a string/);
  assert.throws(() => tinyDatasetFactory({ challengerPrompt: "no slots" }, 0), /\{task\} slot/);
  assert.throws(
    () => tinyMixture({ seed: 1, count: 1, judgePrompt: "{instruction}" }),
    /\{response\}/,
  );
  assert.throws(() => tinyDataset(0).example(-1), /index/);
  const p = tinyDatasetFactory({ maxDifficulty: 3 }, 9);
  assert.deepEqual(p.example(3), tinyDataset(9, { maxDifficulty: 3 }).example(3));
});

Deno.test("judge candidates and malformed tasks exercise every criterion", () => {
  const rng = new Rng(8);
  const hits = new Array(RUBRIC_MAX).fill(0);
  const misses = new Array(RUBRIC_MAX).fill(0);
  for (let i = 0; i < 600; i++) {
    const c = drawJudgeCase(rng, "train", { maxLevel: 4 });
    const g = gradeWithRubric(c.instruction, c.response);
    g.criteria.forEach((ok, k) => ok ? hits[k]++ : misses[k]++);
    if (c.taskKind === "malformed") assert.ok(!parseTask(c.instruction).ok);
  }
  assert.ok(hits.every((h) => h > 20) && misses.every((m) => m > 20), `${hits} / ${misses}`);
  for (const family of FAMILY_NAMES) {
    const task = generateTask(rng, family, 3);
    for (const kind of CANDIDATE_KINDS) {
      const a = candidateAnswer(rng, task, kind);
      const g = gradeWithRubric(task.text, a);
      if (kind === "right") assert.equal(g.score, 7);
      if (kind === "wrong") assert.ok(!g.criteria[4] && g.criteria[3], `${task.text} / ${a}`);
      if (kind === "untidy") assert.ok(g.criteria[4] && !g.criteria[6], `${task.text} / ${a}`);
      if (kind === "empty") assert.equal(g.score, 2);
    }
    assert.ok(!parseTask(malformedTask(rng, task)).ok);
  }
});

Deno.test("the tiny world's plugin registers the mixture for sft manifests as tiny-world", () => {
  const d = generatedDataset(TINY_DATASET_NAME, { maxDifficulty: 2 }, 4);
  assert.equal(TINY_DATASET_NAME, "tiny-world");
  assert.deepEqual(d.example(5), tinyDataset(4, { maxDifficulty: 2 }).example(5));
});

Deno.test("maxTokens bounds every example and tinyChatTokens counts like the chat template", () => {
  const short = tinyMixture({ seed: 2, count: 400, maxTokens: 200 });
  assert.ok(short.every((e) => tinyChatTokens(e) <= 200));
  assert.ok(short.some((e) => e.role === "challenger") && short.some((e) => e.role === "judge"));
  const e = {
    messages: [{ role: "user" as const, content: "ab" }, {
      role: "assistant" as const,
      content: "c",
    }],
  };
  // <|bos|><|user|>ab<|eos|><|assistant|>c<|eos|>
  assert.equal(tinyChatTokens(e), 1 + 2 + 2 + 2 + 1);
});
