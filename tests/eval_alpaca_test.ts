import assert from "node:assert/strict";
import { getGpu } from "../gpu/device.ts";
import { tinyTestConfig, writeRandomModel } from "../lib/model/random_model.ts";
import { LlamaModel } from "../lib/model/llama.ts";
import { loadTokenizer } from "../lib/model/tokenizer.ts";
import { TINY_VOCAB_SIZE, writeTinyTokenizer } from "../lib/tinyworld/tokenizer.ts";
import { RewardModel } from "../lib/rewards/reward_model.ts";
import { alpacaEval } from "../lib/eval/alpaca_eval.ts";
import { loadEvalSet } from "../lib/eval/eval_set.ts";
import { generateReplies } from "../lib/model/chat_replies.ts";
import { winRates } from "../lib/eval/winrate.ts";

const EVAL_SET = [
  { instruction: "Reverse: abc", dataset: "helpful_base" },
  { instruction: "Add 2 and 3", dataset: "helpful_base" },
  { instruction: "Say hi", dataset: "koala" },
  { instruction: "Sort these", input: "c a b", dataset: "koala" },
];

async function setUp(dir: string) {
  const gpu = await getGpu();
  await writeTinyTokenizer(`${dir}/tok`);
  const tokenizer = await loadTokenizer(`${dir}/tok`);
  const lm = tinyTestConfig({ vocabSize: TINY_VOCAB_SIZE });
  // std 0.3 so the random models have sharp preferences and the two differ visibly.
  await writeRandomModel(`${dir}/policy`, lm, { dtype: "F32", seed: 1, std: 0.3 });
  await writeRandomModel(`${dir}/base`, lm, { dtype: "F32", seed: 2, std: 0.3 });
  const rmConfig = { ...lm, architecture: "LlamaForSequenceClassification" as const };
  await writeRandomModel(`${dir}/rm`, rmConfig, { dtype: "F32", seed: 3, std: 0.3 });
  await writeTinyTokenizer(`${dir}/rm`);
  await Deno.writeTextFile(`${dir}/eval.json`, JSON.stringify(EVAL_SET));
  return {
    gpu,
    tokenizer,
    policy: await LlamaModel.load(gpu, `${dir}/policy`),
    base: await LlamaModel.load(gpu, `${dir}/base`),
    rewardModel: await RewardModel.load(gpu, `${dir}/rm`, { batchSize: 8 }),
    evalSet: await loadEvalSet(`${dir}/eval.json`),
  };
}

Deno.test("alpacaEval: outputs, reward-model judging, win rates per subset, base cache", async () => {
  const dir = await Deno.makeTempDir({ prefix: "eval_alpaca_" });
  try {
    const s = await setUp(dir);
    const common = { maxNewTokens: 6, seed: 5, batchSize: 3 };
    const r = await alpacaEval({ ...s, ...common, policyName: "lsp", baseName: "llama" });
    assert.equal(r.sampling.temperature, 0.01);
    assert.equal(r.judge, "model");
    assert.deepEqual(r.evalSet.subsets, { helpful_base: 2, koala: 2 });
    assert.equal(r.base.cached, false);

    // model_outputs.json in AlpacaEval's format, for both models.
    const pol = JSON.parse(r.modelOutputs.policy), base = JSON.parse(r.modelOutputs.base);
    assert.deepEqual(pol.map((x: { instruction: string }) => x.instruction), [
      "Reverse: abc",
      "Add 2 and 3",
      "Say hi",
      "Sort these",
    ]);
    assert.deepEqual(Object.keys(pol[0]), ["instruction", "output", "generator", "dataset"]);
    assert.ok(pol.every((x: { generator: string }) => x.generator === "lsp"));
    assert.ok(base.every((x: { generator: string }) => x.generator === "llama"));
    assert.equal(pol[3].dataset, "koala");
    assert.notDeepEqual(
      pol.map((x: { output: string }) => x.output),
      base.map((x: { output: string }) => x.output),
    );

    // The outputs are the models' replies, whatever the batching.
    const conv = s.evalSet.items.map((it) => [{ role: "user", content: it.prompt }]);
    const one = await generateReplies(s.policy, s.tokenizer, conv, {
      temperature: 0.01,
      maxNewTokens: 6,
      seed: 5,
      batchSize: 1,
    });
    assert.deepEqual(pol.map((x: { output: string }) => x.output), one.texts);

    // The judge's verdicts are the reward model's scores of exactly those outputs.
    const items = s.evalSet.items;
    const ps = await s.rewardModel.score(
      items.map((it, i) => ({ query: it.prompt, answer: pol[i].output })),
    );
    const bs = await s.rewardModel.score(
      items.map((it, i) => ({ query: it.prompt, answer: base[i].output })),
    );
    assert.deepEqual(r.scores, { policy: ps, base: bs });
    const want = winRates(items.map((it, i) => ({
      subset: it.dataset,
      policyScore: ps[i],
      baseScore: bs[i],
    })));
    assert.deepEqual(r.winRate, want);
    assert.deepEqual(Object.keys(r.winRate.perSubset), ["helpful_base", "koala"]);
    assert.equal(r.winRate.wins + r.winRate.ties + r.winRate.losses, 4);
    JSON.parse(JSON.stringify(r)); // plain JSON for eval.json

    // A model against itself ties everywhere: exactly 0.5.
    const self = await alpacaEval({ ...s, ...common, base: s.policy });
    assert.equal(self.winRate.ties, 4);
    assert.equal(self.winRate.overall.mean, 0.5);

    // Base cache: written once, then reused; any sampling change misses.
    const baseCache = { dir: `${dir}/cache`, modelHash: "base-model-hash" };
    const c1 = await alpacaEval({ ...s, ...common, baseCache });
    assert.equal(c1.base.cached, false);
    assert.deepEqual(c1.modelOutputs.base, r.modelOutputs.base.replaceAll('"llama"', '"base"'));
    // Prove reuse: the cached run never touches the base model (a different one is passed).
    const c2 = await alpacaEval({ ...s, ...common, base: s.policy, baseCache });
    assert.equal(c2.base.cached, true);
    assert.equal(c2.base.cacheFile, c1.base.cacheFile);
    assert.deepEqual(c2.modelOutputs.base, c1.modelOutputs.base);
    assert.deepEqual(c2.winRate, c1.winRate);
    const c3 = await alpacaEval({ ...s, ...common, seed: 6, baseCache });
    assert.equal(c3.base.cached, false);
    const c4 = await alpacaEval({
      ...s,
      ...common,
      baseCache: { ...baseCache, modelHash: "other" },
    });
    assert.equal(c4.base.cached, false);

    // A damaged cache entry is an error naming the file, never silently used.
    await Deno.writeTextFile(c1.base.cacheFile!, '{"key":"nope"}');
    await assert.rejects(
      alpacaEval({ ...s, ...common, baseCache }),
      (e: Error) => e.message.includes(c1.base.cacheFile!) && /field "key"/.test(e.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
