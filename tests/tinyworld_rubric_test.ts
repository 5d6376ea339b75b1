/** The 7-criterion rubric, judge prompt, judge completion and score parsing. */

import assert from "node:assert/strict";
import {
  buildJudgePrompt,
  gradeWithRubric,
  judgeCompletion,
  parseJudgeCriteria,
  parseJudgeScore,
  RUBRIC_CRITERIA,
  TINY_JUDGE_PROMPT,
} from "../lib/tinyworld/rubric.ts";
import { renderChallengerPrompt, TINY_CHALLENGER_PROMPT } from "../lib/tinyworld/challenger.ts";

const bits = (instruction: string, response: string) =>
  gradeWithRubric(instruction, response).criteria.map((c) => (c ? 1 : 0)).join("");

Deno.test("rubric: hand-graded cases, criterion by criterion", () => {
  assert.equal(RUBRIC_CRITERIA.length, 7);
  assert.equal(bits("reverse: abc", "cba"), "1111111");
  assert.equal(bits("reverse: abc", "cbb"), "1111011"); // wrong
  assert.equal(bits("reverse: abc", "CBA"), "1111110"); // right, not canonical
  assert.equal(bits("reverse: abc", "cba\nhope this helps"), "1111100"); // extra text
  assert.equal(bits("reverse: abc", "the answer is cba"), "1110000"); // not on format
  assert.equal(bits("reverse: abc", "#%!"), "1110000"); // garbled
  assert.equal(bits("reverse: abc", "  "), "1100000"); // empty
  assert.equal(bits("add: 123456 1", "123457"), "1011111"); // beyond the hardest level
  assert.equal(bits("add: 5", "5"), "0010000"); // malformed task
  assert.equal(bits("add: 5", ""), "0000000");
  assert.equal(bits("sort: 3 1 2", "1,2,3"), "1111110");
  assert.equal(bits("count a: banana", "003"), "1111110");
  assert.equal(bits("add: 2 3", "5\t"), "1111110");
  assert.equal(bits("add: 2 3", "é"), "1100000"); // not printable: not readable
  const g = gradeWithRubric("add: 2 3", "6");
  assert.deepEqual([g.score, g.expected], [6, "5"]);
  assert.equal(gradeWithRubric("add: 5", "x").expected, null);
});

Deno.test("judge completion: the calculation (no solving first), then the score between tags", () => {
  assert.equal(
    judgeCompletion(gradeWithRubric("reverse: abc", "cbb")),
    "1+1+1+1+0+1+1=6\n<score>6</score>",
  );
  assert.equal(
    judgeCompletion(gradeWithRubric("add: 5", "x")),
    "0+0+1+0+0+0+0=1\n<score>1</score>",
  );
  // The calculation reads back criterion by criterion; a line of another length is no calculation.
  assert.deepEqual(
    parseJudgeCriteria("0+0+1+0+0+0+0=1\n<score>1</score>"),
    [false, false, true, false, false, false, false],
  );
  assert.equal(parseJudgeCriteria("1+1=2\n<score>2</score>"), null);
  assert.equal(parseJudgeCriteria("<score>6</score>"), null);
});

Deno.test("judge prompt: slots filled once, missing slots rejected", () => {
  const p = buildJudgePrompt("reverse: abc", "{instruction}");
  assert.ok(p.endsWith("task: reverse: abc\nreply: {instruction}"), p);
  assert.ok(p.startsWith(TINY_JUDGE_PROMPT.slice(0, 30)));
  assert.equal(buildJudgePrompt("a", "b", "[{response}|{instruction}]"), "[b|a]");
  assert.throws(
    () => buildJudgePrompt("a", "b", "{instruction} only"),
    /missing the \{response\} slot/,
  );
});

Deno.test("challenger prompt: four parts, slots filled once", () => {
  const open = renderChallengerPrompt({ task: "", template: "" });
  assert.equal(open.split("\n").length, 4);
  assert.ok(!open.includes("{task}") && !open.includes("{template}"));
  const sort = renderChallengerPrompt({ task: "sort", template: "sort: {numbers}" });
  assert.match(sort, /Pose one sort task/);
  assert.match(sort, /Fill: sort: \{numbers\}/);
  assert.equal(
    renderChallengerPrompt({ task: "{template}", template: "x" }, "{task}/{template}"),
    "{template}/x",
  );
  assert.throws(() => renderChallengerPrompt({ task: "", template: "" }, "no slots"), /\{task\}/);
  assert.ok(TINY_CHALLENGER_PROMPT.length < 160, "short enough for a character model");
});

Deno.test("parseJudgeScore: well-formed, malformed, out of range, fallback", () => {
  assert.deepEqual(parseJudgeScore("expect: 5\n1+1=2\n<score>6</score>"), {
    score: 6,
    status: "ok",
  });
  assert.deepEqual(parseJudgeScore("<score>3</score> then <score> 7 </score>"), {
    score: 7,
    status: "ok",
  });
  assert.deepEqual(parseJudgeScore("<score>0</score>"), { score: 0, status: "ok" });
  assert.deepEqual(parseJudgeScore("score: 6"), { score: 0, status: "malformed" });
  assert.deepEqual(parseJudgeScore("<score>six</score>"), { score: 0, status: "malformed" });
  assert.deepEqual(parseJudgeScore("<score>6.5</score>"), { score: 0, status: "malformed" });
  assert.deepEqual(parseJudgeScore("<score>6"), { score: 0, status: "malformed" });
  assert.deepEqual(parseJudgeScore(""), { score: 0, status: "malformed" });
  assert.deepEqual(parseJudgeScore("<score>8</score>"), { score: 0, status: "out_of_range" });
  assert.deepEqual(parseJudgeScore("<score>-1</score>"), { score: 0, status: "out_of_range" });
  assert.deepEqual(parseJudgeScore("<score>9</score>", { fallback: 3 }), {
    score: 3,
    status: "out_of_range",
  });
  assert.deepEqual(parseJudgeScore("<score>9</score>", { max: 10 }), { score: 9, status: "ok" });
});

Deno.test("committed prompt files equal the default prompts (manifests may name them)", async () => {
  const dir = new URL("../experiments/assets/tiny/", import.meta.url);
  assert.equal(
    await Deno.readTextFile(new URL("challenger_prompt.txt", dir)),
    TINY_CHALLENGER_PROMPT,
  );
  assert.equal(await Deno.readTextFile(new URL("judge_prompt.txt", dir)), TINY_JUDGE_PROMPT);
});
