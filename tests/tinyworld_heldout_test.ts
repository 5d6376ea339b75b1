/** Held-out set: fixed, stratified, disjoint from training; scorers for solver, judge, challenger. */

import assert from "node:assert/strict";
import {
  challengerEvalMessages,
  formatSolverReport,
  HELD_OUT_SEED,
  heldOutJudgeCases,
  heldOutTasks,
  judgeMessages,
  scoreChallenger,
  scoreJudge,
  scoreSolver,
  solverMessages,
  verifierWinRate,
} from "../lib/tinyworld/heldout.ts";
import { tinyMixture } from "../lib/tinyworld/mixture.ts";
import { gradeWithRubric, judgeCompletion } from "../lib/tinyworld/rubric.ts";
import { splitOf } from "../lib/tinyworld/split.ts";
import { FAMILY_NAMES, MAX_LEVEL, parseTask } from "../lib/tinyworld/tasks.ts";

const tasks = heldOutTasks();

Deno.test("held-out set: fixed, stratified over every family and level, distinct", () => {
  assert.deepEqual(heldOutTasks(), tasks);
  assert.deepEqual(heldOutTasks({ seed: HELD_OUT_SEED }), tasks);
  assert.notDeepEqual(heldOutTasks({ seed: 1 }), tasks);
  assert.equal(tasks.length, FAMILY_NAMES.length * MAX_LEVEL * 10);
  assert.equal(new Set(tasks.map((t) => t.text)).size, tasks.length);
  for (const f of FAMILY_NAMES) {
    for (let l = 1; l <= MAX_LEVEL; l++) {
      assert.equal(tasks.filter((t) => t.family === f && t.level === l).length, 10, `${f}/${l}`);
    }
  }
  // Cells have their own streams: fewer families leave the others' tasks unchanged.
  assert.deepEqual(
    heldOutTasks({ families: ["add"] }),
    tasks.filter((t) => t.family === "add"),
  );
  assert.throws(() => heldOutTasks({ perCell: 0 }), /perCell/);
  assert.throws(() => heldOutTasks({ families: ["divide" as "add"] }), /unknown family/);
});

Deno.test("held-out set is disjoint from everything the mixture trains on", () => {
  const held = new Set(tasks.map((t) => t.text));
  for (const t of tasks) assert.equal(splitOf(t.text), "heldout");
  for (const c of heldOutJudgeCases()) {
    if (c.taskKind !== "malformed") assert.equal(splitOf(c.instruction), "heldout");
  }
  let checked = 0;
  for (const seed of [0, 1, 2]) {
    for (const e of tinyMixture({ seed, count: 4000 })) {
      for (const m of e.messages) {
        // Every task text inside any message: the whole turn or the judge prompt's task line.
        const texts = [m.content, ...(m.content.match(/(?<=task: ).*/g) ?? [])];
        for (const text of texts) {
          const r = parseTask(text);
          if (!r.ok) continue;
          checked++;
          assert.ok(!held.has(r.task.text), `training example contains held-out "${r.task.text}"`);
          assert.equal(splitOf(r.task.text), "train");
        }
      }
    }
  }
  assert.ok(checked > 10000, `checked ${checked}`);
});

Deno.test("scoreSolver: exact accuracy per family, level and cell", () => {
  // Right on every level-1 and level-2 task, and on reverse; wrong elsewhere.
  const answers = tasks.map((t) => t.level <= 2 || t.family === "reverse" ? t.answer : "x");
  const r = scoreSolver(tasks, answers);
  assert.equal(r.overall.n, 300);
  assert.equal(r.overall.correct, 120 + 30);
  assert.equal(r.byLevel["1"].accuracy, 1);
  assert.equal(r.byLevel["3"].correct, 10);
  assert.equal(r.byFamily.reverse.accuracy, 1);
  assert.equal(r.byFamily.add.accuracy, 0.4);
  assert.equal(r.byCell["add/5"].accuracy, 0);
  assert.ok(Math.abs(r.byFamily.add.stderr - Math.sqrt(0.24 / 50)) < 1e-12);
  const text = formatSolverReport(r);
  assert.match(text, /level 5 +16\.7% ± /);
  assert.throws(() => scoreSolver(tasks, []), /300 tasks but 0 answers/);
});

Deno.test("scoreJudge: agreement with the rubric, parse failures counted", () => {
  const cases = heldOutJudgeCases({ count: 70 });
  assert.deepEqual(heldOutJudgeCases({ count: 70 }), cases);
  assert.ok(new Set(cases.map((c) => c.rubricScore)).size >= 4);
  // Stratified: 10 cases of each level, malformed and beyond-range tasks.
  for (const k of ["1", "2", "3", "4", "5", "malformed", "beyond"]) {
    assert.equal(cases.filter((c) => c.category === k).length, 10, k);
  }
  assert.ok(cases.filter((c) => c.category === "malformed").every((c) => c.rubricScore <= 1));
  const perfect = cases.map((c) => judgeCompletion(gradeWithRubric(c.instruction, c.response)));
  const r = scoreJudge(cases, perfect);
  const perStratum = { n: 10, within1: 1, instructionCriteria: 1 };
  assert.deepEqual(r, {
    n: 70,
    agreement: 1,
    within1: 1,
    meanAbsError: 0,
    malformed: 0,
    outOfRange: 0,
    instructionCriteria: 1,
    criteria: [1, 1, 1, 1, 1, 1, 1],
    noCalculation: 0,
    byCategory: Object.fromEntries(
      ["1", "2", "3", "4", "5", "malformed", "beyond"].map((k) => [k, perStratum]),
    ),
  });
  // A judge that calls every task well formed and in range fails exactly the strata it should.
  const lazy = cases.map((c) => {
    const g = gradeWithRubric(c.instruction, c.response);
    return judgeCompletion({ ...g, criteria: [true, true, ...g.criteria.slice(2)] });
  });
  const l = scoreJudge(cases, lazy);
  assert.equal(l.byCategory["malformed"].instructionCriteria, 0);
  assert.equal(l.byCategory["beyond"].instructionCriteria, 0);
  assert.equal(l.byCategory["3"].instructionCriteria, 1);
  const noisy = cases.map((c, i) =>
    i % 3 === 0 ? "no score" : i % 3 === 1 ? "<score>9</score>" : `<score>${c.rubricScore}</score>`
  );
  const s = scoreJudge(cases, noisy);
  assert.equal(s.malformed, 24);
  assert.equal(s.outOfRange, 23);
  assert.equal(s.agreement, 23 / 70);
  assert.equal(s.noCalculation, 70);
  assert.ok(s.meanAbsError > 0);
  assert.throws(() => scoreJudge(cases, []), /70 cases but 0 outputs/);
});

Deno.test("scoreChallenger: validity, range, diversity, families and levels", () => {
  const outputs = [
    "reverse: abc",
    "reverse: abc",
    "add: 123456 1",
    "sort: 1 2 3\n",
    "what is 2+2",
    "",
    "count ab: x",
    "max: 4 5",
  ];
  const r = scoreChallenger(outputs);
  assert.equal(r.n, 8);
  assert.equal(r.wellFormed, 5);
  assert.equal(r.wellFormedShare, 5 / 8);
  assert.equal(r.inRangeShare, 4 / 8);
  assert.equal(r.distinctShare, 4 / 8);
  assert.deepEqual(r.byFamily, { reverse: 2, add: 1, sort: 1, max: 1 });
  assert.equal(r.byLevel["6"], 1);
  assert.equal(scoreChallenger([]).wellFormedShare, 0);
});

Deno.test("verifierWinRate: wins, ties half, losses", () => {
  const t = tasks.slice(0, 4);
  const right = t.map((x) => x.answer);
  const r = verifierWinRate(t, [right[0], right[1], "x", "x"], [right[0], "x", right[2], "x"]);
  assert.deepEqual([r.wins, r.ties, r.losses], [1, 2, 1]);
  assert.equal(r.winRate, 0.5);
  assert.ok(r.stderr > 0);
  assert.throws(() => verifierWinRate(t, right, []), /4 tasks/);
});

Deno.test("eval conversations: solver, judge and challenger prompts", () => {
  assert.deepEqual(solverMessages(tasks[0]), [{ role: "user", content: tasks[0].text }]);
  const j = judgeMessages({ instruction: "add: 2 3", response: "5" })[0];
  assert.ok(j.role === "user" && j.content.endsWith("task: add: 2 3\nreply: 5"));
  const c = challengerEvalMessages(14);
  assert.equal(c.length, 14);
  assert.equal(c[0][0].content, c[7][0].content);
  assert.match(c[1][0].content, /Pose one reverse task/);
  assert.match(c[6][0].content, /Fill: repeat \{times\}: \{word\}/);
});
