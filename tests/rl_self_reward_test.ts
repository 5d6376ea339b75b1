// Self-reward score parsing (well-formed, malformed, out of range) and the role prompts.
import { assertEquals, assertThrows } from "./rl_asserts.ts";
import { parseScoreTag as parseSelfRewardScore } from "../lib/rewards/score_tag.ts";
import {
  challengerConversation,
  fillChallengerPrompt,
  fillJudgePrompt,
  readPromptSource,
  solverConversation,
} from "../lib/rl/conversations.ts";

Deno.test("well-formed judge outputs: the last <score> tag counts", () => {
  assertEquals(parseSelfRewardScore("1+1+0+1+1+1+1=6\n<score>6</score>"), {
    score: 6,
    status: "ok",
  });
  assertEquals(parseSelfRewardScore("<score> 0 </score>"), { score: 0, status: "ok" });
  assertEquals(parseSelfRewardScore("<score>7</score>"), { score: 7, status: "ok" });
  // A quoted example score earlier in the text is overruled by the final total.
  assertEquals(parseSelfRewardScore("format <score>N</score> ... total <score>3</score>"), {
    score: 3,
    status: "ok",
  });
});

Deno.test("score tags are read whatever their case and inner whitespace (the paper writes <Score>)", () => {
  for (
    const text of [
      "<Score>5</Score>",
      "<SCORE> 5 </SCORE>",
      "< score >5</ score >",
      "Calculation: 1+1+1+1+0+0+1 = 5\n<Score>\n5\n</Score>",
      "<score>2</score> ... <Score>5</Score>",
    ]
  ) {
    assertEquals(parseSelfRewardScore(text), { score: 5, status: "ok" }, text);
  }
  // The old case-sensitive reading took these as malformed and scored them 0.
  assertEquals(parseSelfRewardScore("<Score>8</Score>"), { score: 0, status: "out_of_range" });
});

Deno.test("malformed judge outputs score the fallback and say so", () => {
  for (
    const text of [
      "",
      "6",
      "<score>six</score>",
      "<score>5.5</score>",
      "<score>4",
      "<score></score>",
    ]
  ) {
    assertEquals(parseSelfRewardScore(text), { score: 0, status: "malformed" }, text);
  }
  assertEquals(parseSelfRewardScore("no tag", { fallback: 3.5 }), {
    score: 3.5,
    status: "malformed",
  });
});

Deno.test("out-of-range scores score the fallback and are told apart from malformed ones", () => {
  assertEquals(parseSelfRewardScore("<score>8</score>"), { score: 0, status: "out_of_range" });
  assertEquals(parseSelfRewardScore("<score>-1</score>"), { score: 0, status: "out_of_range" });
  assertEquals(parseSelfRewardScore("<score>10</score>", { max: 10 }), { score: 10, status: "ok" });
  assertEquals(parseSelfRewardScore("<score>8</score>", { fallback: 1 }), {
    score: 1,
    status: "out_of_range",
  });
});

Deno.test("challenger prompt: {task} and {template} filled once, other braces kept", () => {
  const t = "Write one input for {task}. Replace each {placeholder}:\n{template}";
  assertEquals(
    fillChallengerPrompt(t, { task: "reverse {template}", template: "reverse: {letters}" }),
    "Write one input for reverse {template}. Replace each {placeholder}:\nreverse: {letters}",
  );
  assertEquals(
    fillChallengerPrompt(t, { task: "", template: "" }),
    "Write one input for . Replace each {placeholder}:\n",
  );
  assertThrows(
    () => fillChallengerPrompt("no slots {task}", { task: "", template: "" }),
    Error,
    "{template}",
  );
  assertEquals(challengerConversation("p"), [{ role: "user", content: "p" }]);
  assertEquals(solverConversation("q"), [{ role: "user", content: "q" }]);
});

Deno.test("judge prompt: slots filled once; prompts from text or file, missing file named", async () => {
  assertEquals(
    fillJudgePrompt("I={instruction} R={response}", "say {response}", "ok"),
    "I=say {response} R=ok",
  );
  assertThrows(() => fillJudgePrompt("{instruction} only", "a", "b"), Error, "{response}");
  assertEquals(await readPromptSource({ text: "inline" }, "x"), "inline");
  const judge = await readPromptSource({ file: "experiments/assets/lsp/judge_prompt.txt" }, "p");
  fillJudgePrompt(judge, "a", "b"); // the committed asset has both slots
  const ch = await readPromptSource({ file: "experiments/assets/lsp/challenger_prompt.txt" }, "p");
  fillChallengerPrompt(ch, { task: "", template: "" });
  let err = "";
  try {
    await readPromptSource({ file: "no/such/prompt.txt" }, "challenger.prompt");
  } catch (e) {
    err = (e as Error).message;
  }
  assertEquals(err.startsWith("challenger.prompt.file: cannot read "), true, err);
  assertEquals(err.includes("no/such/prompt.txt"), true, err);
});

Deno.test("the LSP judge prompt has the paper's structure: 7 criteria, a calculation, the total", async () => {
  const judge = await readPromptSource({ file: "experiments/assets/lsp/judge_prompt.txt" }, "p");
  for (let k = 1; k <= 7; k++) assertEquals(judge.includes(`\n${k}. `), true, `criterion ${k}`);
  assertEquals(judge.includes("at most 100 words"), true);
  // The calculation example lists 7 points and adds up to the total its score tags show.
  const calc = /Calculation: ([01](?: \+ [01]){6}) = (\d)/.exec(judge);
  assertEquals(calc !== null, true, "no calculation example");
  const sum = calc![1].split(" + ").reduce((a, x) => a + Number(x), 0);
  assertEquals(sum, Number(calc![2]));
  assertEquals(parseSelfRewardScore(judge.slice(judge.indexOf(calc![0]))).score, sum);
});

Deno.test("the oracle-judge ablation scores with the exact rubric and says every judgement is read", async () => {
  // The tiny world registers its rubric as the "tiny-rubric" oracle.
  await import("../lib/tinyworld/plugin.ts");
  const { QUALITY_ORACLES, oracleJudge } = await import("../lib/rl/self_reward.ts");
  const judge = oracleJudge(QUALITY_ORACLES.get("tiny-rubric"), 7);
  const r = await judge.score(
    [
      { query: "reverse: abc", answer: "cba" }, // all 7 criteria
      { query: "reverse: abc", answer: "cbb" }, // wrong: 6
      { query: "REVERSE abc", answer: "cba" }, // malformed task: readable only
    ],
    0,
    0,
  );
  assertEquals(r.scores, [7, 6, 1]);
  assertEquals(r.outputs[1], "1+1+1+1+0+1+1=6\n<score>6</score>");
  assertEquals([r.malformed, r.outOfRange, r.truncated], [0, 0, 0]);
  assertEquals(r.histogram, [0, 1, 0, 0, 0, 0, 1, 1]);
});
