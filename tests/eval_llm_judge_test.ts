// The pairwise LLM judge of the AlpacaEval evaluation on generated models: label probabilities
// against an f64 reference of the judge's logits, the evaluation's symmetry (swapping the two
// models' roles gives 1 - the win rate), AlpacaEval's file formats, and the errors a user sees
// for bad judge outputs, bad settings and a missing judge.
import assert from "node:assert/strict";
import { join } from "node:path";
import { getGpu } from "../gpu/device.ts";
import { writeBuffer } from "../gpu/buffers.ts";
import { tinyTestConfig, writeRandomModel } from "../lib/model/random_model.ts";
import { LlamaModel } from "../lib/model/llama.ts";
import { type ChatTokenizer, loadTokenizer } from "../lib/model/tokenizer.ts";
import { TINY_VOCAB_SIZE, writeTinyTokenizer } from "../lib/tinyworld/tokenizer.ts";
import { loadEvalSet } from "../lib/eval/eval_set.ts";
import {
  alpacaEvalInputs,
  alpacaEvalLlm,
  type LlmAlpacaEvalResult,
  type LlmJudgedOptions,
} from "../lib/eval/alpaca_eval.ts";
import { PairwiseJudge, readLabels } from "../lib/eval/pairwise_judge.ts";
import { EvalSchema, JUDGE_ENV } from "../lib/eval/evaluation.ts";
import { readModelF64, refLogits } from "./reference/llama_ref.ts";

const EVAL_SET = [
  { instruction: "Reverse: abc", dataset: "helpful_base" },
  { instruction: "Add 2 and 3", dataset: "helpful_base" },
  { instruction: "Say hi", dataset: "koala" },
  { instruction: "Sort these", input: "c a b", dataset: "koala" },
  { instruction: "Count to 3", dataset: "oasst" },
  { instruction: "Name a color", dataset: "oasst" },
];

/** A short template: the tiny models have few positions. */
const TEMPLATE = "Q:{instruction}\n{label_1}:{output_1}\n{label_2}:{output_2}\nBest?";

const judgeConfig = () =>
  tinyTestConfig({ vocabSize: TINY_VOCAB_SIZE, maxPositionEmbeddings: 512 });

async function setUp(dir: string) {
  const gpu = await getGpu();
  await writeTinyTokenizer(`${dir}/tok`);
  const tokenizer = await loadTokenizer(`${dir}/tok`);
  const lm = tinyTestConfig({ vocabSize: TINY_VOCAB_SIZE, maxPositionEmbeddings: 256 });
  await writeRandomModel(`${dir}/a`, lm, { dtype: "F32", seed: 1, std: 0.3 });
  await writeRandomModel(`${dir}/b`, lm, { dtype: "F32", seed: 2, std: 0.3 });
  // std 0.3: a random judge with sharp, varied preferences.
  await writeRandomModel(`${dir}/judge`, judgeConfig(), { dtype: "F32", seed: 3, std: 0.3 });
  await writeTinyTokenizer(`${dir}/judge`);
  await Deno.writeTextFile(`${dir}/eval.json`, JSON.stringify(EVAL_SET));
  return {
    gpu,
    tokenizer,
    a: await LlamaModel.load(gpu, `${dir}/a`),
    b: await LlamaModel.load(gpu, `${dir}/b`),
    evalSet: await loadEvalSet(`${dir}/eval.json`),
    judgeTokenizer: await loadTokenizer(`${dir}/judge`),
  };
}

function makeJudge(
  model: LlamaModel,
  tokenizer: ChatTokenizer,
  over: Partial<ConstructorParameters<typeof PairwiseJudge>[2]> = {},
): PairwiseJudge {
  return new PairwiseJudge(model, tokenizer, {
    template: TEMPLATE,
    templateSource: "test template",
    labels: ["m", "M"],
    labelTopK: 0,
    batchSize: 3,
    ...over,
  }, "test judge");
}

Deno.test("readLabels: the two-way softmax of the label logits, ranks, mass; stable; NaN refused", () => {
  const logits = [0.5, 2, -1, 1.5, 3];
  const r = readLabels(logits, [1, 3], "row");
  assert.ok(Math.abs(r.pFirst - Math.exp(2) / (Math.exp(2) + Math.exp(1.5))) < 1e-15);
  assert.deepEqual(r.labelRanks, [1, 2]);
  const z = logits.reduce((a, x) => a + Math.exp(x), 0);
  assert.ok(Math.abs(r.labelMass - (Math.exp(2) + Math.exp(1.5)) / z) < 1e-15);
  // Logits far apart or huge do not overflow.
  assert.equal(readLabels([1000, -1000], [0, 1], "row").pFirst, 1);
  assert.equal(readLabels([-1000, 1000], [0, 1], "row").pFirst, 0);
  assert.ok(Math.abs(readLabels([1e4, 1e4 - Math.log(3)], [0, 1], "x").pFirst - 0.75) < 1e-12);
  assert.throws(
    () => readLabels([0, NaN, 1], [0, 2], "instruction 7 (output_2 shown first)"),
    (e: Error) =>
      /instruction 7 \(output_2 shown first\)/.test(e.message) && /token 1 is NaN/.test(e.message),
  );
});

Deno.test("PairwiseJudge: label probabilities equal the f64 reference's, in any batch", async () => {
  const dir = await Deno.makeTempDir({ prefix: "llm_judge_ref_" });
  try {
    const s = await setUp(dir);
    const judgeModel = await LlamaModel.load(s.gpu, `${dir}/judge`);
    const ref = await readModelF64(`${dir}/judge`);
    const judge = makeJudge(judgeModel, s.judgeTokenizer);
    const pairs = [
      { instruction: "Say hi", output1: "hi", output2: "hello there" },
      { instruction: "Add 2 and 3", output1: "5", output2: "6" },
      { instruction: "x", output1: "", output2: "{output_1} stays as written" },
    ];
    const verdicts = await judge.compare(pairs);
    const [m, M] = judge.labelIds;
    const V = judgeConfig().vocabSize;
    let k = 0;
    for (const [i, p] of pairs.entries()) {
      for (
        const [o, [first, second]] of [[p.output1, p.output2], [p.output2, p.output1]].entries()
      ) {
        const prompt = judge.encodePrompt(p.instruction, first, second);
        const logits = refLogits(ref.config, ref.weights, prompt);
        const last = logits.subarray((prompt.length - 1) * V, prompt.length * V);
        const want = Math.exp(last[m]) / (Math.exp(last[m]) + Math.exp(last[M]));
        const got = verdicts[i].orders[o];
        assert.ok(
          Math.abs(got.pFirst - want) < 1e-4,
          `pair ${i} order ${o}: ${got.pFirst} vs ${want}`,
        );
        assert.ok(Math.abs(got.labelLogits[0] - last[m]) < 1e-3);
        k++;
      }
    }
    assert.equal(k, 6);
    // The placeholder inside an output is not filled again.
    assert.ok(
      s.judgeTokenizer.decode(judge.encodePrompt("x", "", "{output_1} y")).includes("{output_1} y"),
    );
    // The preference of output_2: P(label_2) when output_1 is first, P(label_1) when second.
    for (const v of verdicts) {
      assert.equal(v.orders[0].first, "output_1");
      assert.equal(v.orders[0].pOutput2, 1 - v.orders[0].pFirst);
      assert.equal(v.orders[1].pOutput2, v.orders[1].pFirst);
      assert.equal(v.preference, (v.orders[0].pOutput2 + v.orders[1].pOutput2) / 2);
    }
    // The judge's verdicts do not depend on the batching (row-invariant kernels).
    const alone = await makeJudge(judgeModel, s.judgeTokenizer, { batchSize: 1 }).compare(pairs);
    assert.deepEqual(alone, verdicts);
    judgeModel.destroy();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("LLM-judged AlpacaEval: swapping the models' roles gives 1 - the win rate; AlpacaEval's files", async () => {
  const dir = await Deno.makeTempDir({ prefix: "llm_judge_eval_" });
  try {
    const s = await setUp(dir);
    const events: string[] = [];
    const options = (policy: LlamaModel, base: LlamaModel, labelTopK = 0): LlmJudgedOptions => ({
      policy,
      base,
      tokenizer: s.tokenizer,
      evalSet: s.evalSet,
      maxNewTokens: 8,
      seed: 5,
      batchSize: 4,
      policyName: "lsp",
      baseName: "llama",
      maxUnreadable: 0,
      releaseTraining: () => events.push("release"),
      loadJudge: async () => {
        events.push("load judge");
        const model = await LlamaModel.load(s.gpu, `${dir}/judge`);
        return {
          judge: makeJudge(model, s.judgeTokenizer, { labelTopK }),
          description: "tiny-judge",
        };
      },
      log: (l) => events.push(l),
    });
    const ab = await alpacaEvalLlm(options(s.a, s.b));
    assert.deepEqual(events.slice(0, 3), [
      "release",
      "evaluation: freed training's models and optimizer state before loading the judge",
      "load judge",
    ]);
    const ba = await alpacaEvalLlm(options(s.b, s.a));

    // Symmetry: both orders are judged, so the same prompts are read with the roles swapped.
    const w = ab.winRate.overall.mean;
    assert.ok(w > 0 && w < 1 && w !== 0.5, `win rate ${w}`);
    assert.ok(Math.abs(w + ba.winRate.overall.mean - 1) < 1e-12);
    assert.ok(Math.abs(ab.winRate.overall.se - ba.winRate.overall.se) < 1e-12);
    assert.deepEqual(Object.keys(ab.winRate.perSubset), ["helpful_base", "koala", "oasst"]);
    for (const k of Object.keys(ab.winRate.perSubset)) {
      assert.ok(Math.abs(ab.winRate.perSubset[k].mean + ba.winRate.perSubset[k].mean - 1) < 1e-12);
    }
    assert.equal(ab.winRate.wins, ba.winRate.losses);
    const lc = ab.lengthControlled, lcSwapped = ba.lengthControlled;
    assert.equal(lc.glm, "length_controlled_minimal");
    assert.ok(Math.abs(lc.winRate.mean + lcSwapped.winRate.mean - 1) < 1e-9);
    assert.ok(lc.winRate.se !== null);
    assert.deepEqual(Object.keys(lc.perSubset), ["helpful_base", "koala", "oasst"]);
    assert.equal(ab.judge.kind, "llm");
    assert.equal(ab.judge.unreadable, 0);
    assert.match(
      ab.judge.description,
      /judged by tiny-judge \(an LLM judge, pairwise in both orders\)/,
    );

    // annotations.json: AlpacaEval's fields; output_1 is the baseline's, output_2 the policy's.
    const ann = JSON.parse(ab.annotations), annSwapped = JSON.parse(ba.annotations);
    const outputs = JSON.parse(ab.modelOutputs.policy),
      baseOutputs = JSON.parse(ab.modelOutputs.base);
    assert.equal(ann.length, EVAL_SET.length);
    assert.deepEqual(Object.keys(ann[0]), [
      "dataset",
      "instruction",
      "output_1",
      "generator_1",
      "output_2",
      "generator_2",
      "annotator",
      "preference",
      "raw_completion",
    ]);
    ann.forEach((r: Record<string, unknown>, i: number) => {
      assert.equal(r.instruction, EVAL_SET[i].instruction);
      assert.equal(r.dataset, EVAL_SET[i].dataset);
      assert.equal(r.generator_1, "llama");
      assert.equal(r.generator_2, "lsp");
      assert.equal(r.output_1, baseOutputs[i].output);
      assert.equal(r.output_2, outputs[i].output);
      const p = r.preference as number;
      assert.ok(p >= 1 && p <= 2);
      assert.ok(Math.abs(p + annSwapped[i].preference - 3) < 1e-12);
    });
    const mean = ann.reduce((a: number, r: { preference: number }) => a + r.preference - 1, 0) /
      ann.length;
    assert.ok(Math.abs(mean - w) < 1e-12, "the win rate is the annotations' mean preference - 1");
    assert.deepEqual(Object.keys(outputs[0]), ["instruction", "output", "generator", "dataset"]);
    JSON.parse(JSON.stringify({ ...ab, annotations: undefined })); // plain JSON for eval.json

    // A model against itself: both orders show the same text, so 0.5 everywhere, whatever the
    // judge's position bias (which this random judge has: see firstShownPreferred).
    const self: LlmAlpacaEvalResult = await alpacaEvalLlm(options(s.a, s.a));
    for (const r of JSON.parse(self.annotations)) assert.ok(Math.abs(r.preference - 1.5) < 1e-15);
    assert.ok(Math.abs(self.judge.firstShownPreferred - 0.5) > 0.01, "a position-biased judge");

    // Unreadable verdicts (neither label in the judge's top K in an order) are left out and
    // counted: pick K from the ranks the judge gave so that some instructions fall out.
    const worst = ann.map((r: { raw_completion: { orders: { label_ranks: number[] }[] } }) =>
      Math.max(...r.raw_completion.orders.map((o) => Math.min(...o.label_ranks)))
    );
    const K = [...worst].sort((x, y) => x - y)[2] + 1;
    const readable = worst.map((r: number) => r < K);
    const dropped = readable.filter((r: boolean) => !r).length;
    assert.ok(dropped > 0 && dropped < EVAL_SET.length, `K ${K}: ${worst}`);
    const partial = await alpacaEvalLlm({ ...options(s.a, s.b, K), maxUnreadable: 1 });
    assert.equal(partial.judge.unreadable, dropped);
    assert.equal(partial.winRate.overall.n, EVAL_SET.length - dropped);
    assert.equal(partial.lengthControlled.winRate.n, EVAL_SET.length - dropped);
    const partialAnn = JSON.parse(partial.annotations);
    partialAnn.forEach((r: { preference: number | null }, i: number) => {
      assert.equal(r.preference === null, !readable[i]);
      if (r.preference !== null) assert.equal(r.preference, ann[i].preference);
    });
    // More unreadable than maxUnreadable allows: an error (see the bad-outputs test).
    await assert.rejects(
      alpacaEvalLlm({ ...options(s.a, s.b, K), maxUnreadable: (dropped - 1) / EVAL_SET.length }),
      new RegExp(`eval.judge: ${dropped} of 6 verdicts are unreadable`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("LLM judge: bad outputs and bad settings are clear errors", async () => {
  const dir = await Deno.makeTempDir({ prefix: "llm_judge_bad_" });
  try {
    const s = await setUp(dir);
    const base = {
      policy: s.a,
      base: s.b,
      tokenizer: s.tokenizer,
      evalSet: s.evalSet,
      maxNewTokens: 4,
      seed: 5,
      maxUnreadable: 0.1,
    };
    const loadWith = (over: Parameters<typeof makeJudge>[2], poison = false) => async () => {
      const model = await LlamaModel.load(s.gpu, `${dir}/judge`);
      if (poison) {
        // A judge whose LM head holds a NaN: every logit row has a non-finite value.
        const c = judgeConfig();
        const w = new Float32Array(c.vocabSize * c.hiddenSize).fill(0.01);
        w[5 * c.hiddenSize] = NaN;
        writeBuffer(s.gpu, model.w("lm_head.weight"), w);
      }
      return { judge: makeJudge(model, s.judgeTokenizer, over), description: "tiny-judge" };
    };
    await assert.rejects(
      alpacaEvalLlm({ ...base, loadJudge: loadWith({}, true) }),
      /instruction \d+ \(output_[12] shown first\): the judge's logit of token 5 is NaN/,
    );
    // A judge that never answers with a label (neither is its top token): unreadable verdicts.
    await assert.rejects(
      alpacaEvalLlm({ ...base, loadJudge: loadWith({ labelTopK: 1 }) }),
      (e: Error) =>
        /eval.judge: \d of 6 verdicts are unreadable/.test(e.message) &&
        /labelTopK=0/.test(e.message),
    );
    const model = await LlamaModel.load(s.gpu, `${dir}/judge`);
    assert.throws(
      () => makeJudge(model, s.judgeTokenizer, { labels: ["m", "mm"] }),
      /labels\[1\]: "mm" is 2 tokens/,
    );
    assert.throws(
      () => makeJudge(model, s.judgeTokenizer, { labels: ["m", "m"] }),
      /are one token/,
    );
    assert.throws(
      () => makeJudge(model, s.judgeTokenizer, { template: "{instruction} {output_1} {output_2}" }),
      /test template: the judge prompt has no \{label_1\} placeholder/,
    );
    await assert.rejects(
      makeJudge(model, s.judgeTokenizer).compare([{
        instruction: "x".repeat(600),
        output1: "a",
        output2: "b",
      }]),
      /instruction 0 \(output_1 shown first\) is \d+ tokens; the judge takes 1..512/,
    );
    model.destroy();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("LLM judge settings: a missing judge says what to download and where; the schema", async () => {
  const dir = await Deno.makeTempDir({ prefix: "llm_judge_missing_" });
  try {
    await Deno.writeTextFile(`${dir}/eval.json`, JSON.stringify(EVAL_SET));
    const saved = Deno.env.get(JUDGE_ENV);
    Deno.env.delete(JUDGE_ENV);
    try {
      const e = EvalSchema.parse({
        kind: "alpaca",
        evalSet: { path: `${dir}/eval.json` },
        judge: { kind: "llm" },
      });
      assert.throws(
        () => alpacaEvalInputs(e),
        (err: Error) =>
          err.message.startsWith("eval.judge.model: no folder given") &&
          err.message.includes(`environment variable ${JUDGE_ENV}`) &&
          err.message.includes("--set eval.judge.model.dir=PATH") &&
          err.message.includes("a gated model") &&
          err.message.includes(
            "`huggingface-cli download meta-llama/Llama-3.1-8B-Instruct --local-dir $SELFPLAY_JUDGE_DIR`",
          ) &&
          err.message.includes("a larger one, e.g. meta-llama/Llama-3.3-70B-Instruct"),
      );
      const missing = join(dir, "Llama-3.1-8B-Instruct");
      const e2 = EvalSchema.parse({ ...e, judge: { kind: "llm", model: { dir: missing } } });
      assert.throws(
        () => alpacaEvalInputs(e2),
        (err: Error) => err.message.startsWith(`eval.judge.model: ${missing} does not exist`),
      );
      // With the folder present, its prompt must carry the placeholders.
      await Deno.mkdir(missing);
      await Deno.writeTextFile(`${dir}/p.txt`, "{instruction} {output_1} {output_2} {label_1}");
      const e3 = EvalSchema.parse({ ...e2, judge: { ...e2.judge, promptFile: `${dir}/p.txt` } });
      assert.throws(() => alpacaEvalInputs(e3), /p.txt has no \{label_2\} placeholder/);
      const ok = EvalSchema.parse({ ...e2, judge: { ...e2.judge } });
      assert.deepEqual(alpacaEvalInputs(ok).slice(1), [
        missing,
        "experiments/assets/lsp/alpaca_judge_prompt.txt",
      ]);
      await Deno.writeTextFile(`${dir}/d.csv`, "index,instruction_difficulty\n0,0.5\n1,abc\n");
      const e4 = EvalSchema.parse({
        ...ok,
        judge: { ...ok.judge, instructionDifficulty: { path: `${dir}/d.csv` } },
      });
      assert.throws(
        () => alpacaEvalInputs(e4),
        /d.csv:3: instruction_difficulty "abc" is not a number/,
      );
    } finally {
      if (saved !== undefined) Deno.env.set(JUDGE_ENV, saved);
    }
    // alpaca needs a judge; other evaluations have none.
    const issue = (v: unknown) => {
      const r = EvalSchema.safeParse(v);
      return r.success ? "" : `${r.error.issues[0].path.join(".")}: ${r.error.issues[0].message}`;
    };
    assert.match(issue({ kind: "alpaca" }), /^judge: required with kind "alpaca"/);
    assert.match(
      issue({ kind: "none", judge: { kind: "reward-model" } }),
      /^judge: only the "alpaca" evaluation has a judge/,
    );
    assert.equal(EvalSchema.parse({ kind: "none" }).judge, undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
