import assert from "node:assert/strict";
import { getGpu } from "../gpu/device.ts";
import type { LlamaConfig } from "../lib/model/config.ts";
import { tinyTestConfig, writeRandomModel } from "../lib/model/random_model.ts";
import { loadTokenizer } from "../lib/model/tokenizer.ts";
import { TINY_VOCAB_SIZE, writeTinyTokenizer } from "../lib/tinyworld/tokenizer.ts";
import { RewardModel } from "../lib/rewards/reward_model.ts";
import type { RewardItem } from "../lib/rewards/reward.ts";
import { readModelF64, refLogits } from "./reference/llama_ref.ts";

/** A tiny reward model (random weights, tiny world tokenizer and chat template) in `dir`. */
async function writeTinyRewardModel(dir: string, overrides: Partial<LlamaConfig> = {}) {
  const config = tinyTestConfig({
    architecture: "LlamaForSequenceClassification",
    vocabSize: TINY_VOCAB_SIZE,
    numLabels: 1,
    padTokenId: 0,
    ...overrides,
  });
  await writeRandomModel(dir, config, { dtype: "F32", seed: 11, std: 0.3 });
  await writeTinyTokenizer(dir);
}

/**
 * The f64 reference score of a token sequence: the reference Llama with score.weight as a
 * one-row "LM head", read at the last position.
 */
async function refScorer(dir: string): Promise<(ids: number[]) => number> {
  const ref = await readModelF64(dir);
  const weights = new Map(ref.weights);
  weights.set("lm_head.weight", ref.weights.get("score.weight")!);
  const config = { ...ref.config, vocabSize: 1, tied: false };
  return (ids) => {
    const scores = refLogits(config, weights, ids);
    return scores[ids.length - 1];
  };
}

const ITEMS: RewardItem[] = [
  { query: "Reverse: abc", answer: "cba" },
  { query: "Add 12 and 30", answer: "42" },
  { query: "Sort: d b a c", answer: "a b c d, and that is all there is to it." },
  { query: "Hi", answer: "" },
  { query: "Count the letters in banana", answer: "6" },
];

async function withRewardModel(
  overrides: Partial<LlamaConfig>,
  f: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "rewards_model_" });
  try {
    await writeTinyRewardModel(dir, overrides);
    await f(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("reward scores match the f64 reference at each pair's last token", async () => {
  const gpu = await getGpu();
  await withRewardModel({}, async (dir) => {
    const rm = await RewardModel.load(gpu, dir, { batchSize: 3 });
    const ref = await refScorer(dir);
    const tok = await loadTokenizer(dir);
    const got = await rm.score(ITEMS);
    assert.equal(got.length, ITEMS.length);
    ITEMS.forEach((it, i) => {
      const ids = tok.encodeChat(
        [{ role: "user", content: it.query }, { role: "assistant", content: it.answer }],
        { addGenerationPrompt: false },
      );
      // The pair is rendered with the template and scored at its final end-of-turn token.
      assert.deepEqual(rm.encodePair(it), ids);
      assert.equal(ids[ids.length - 1], tok.tokenToId("<|eos|>"));
      const want = ref(ids);
      assert.ok(Math.abs(want) > 0.05, `reference score too small to test anything: ${want}`);
      assert.ok(
        Math.abs(got[i] - want) <= 1e-4 * Math.max(1, Math.abs(want)),
        `pair ${i}: got ${got[i]}, reference ${want}`,
      );
    });
    // Different pairs get different scores (the score reads each pair, not a shared row).
    assert.equal(new Set(got).size, got.length);
    assert.equal(rm.stats.scored, ITEMS.length);
    assert.equal(rm.stats.batches, 2);
    assert.equal(rm.stats.truncated, 0);
  });
});

Deno.test("batched scores equal single-pair scores bit for bit, whatever the padding", async () => {
  const gpu = await getGpu();
  await withRewardModel({}, async (dir) => {
    const tok = await loadTokenizer(dir);
    const batched = new RewardModel((await RewardModel.load(gpu, dir)).model, tok, {
      batchSize: ITEMS.length,
    });
    const single = new RewardModel(batched.model, tok, { batchSize: 1 });
    const a = await batched.score(ITEMS);
    const b = await single.score(ITEMS);
    assert.deepEqual(Float32Array.from(a), Float32Array.from(b));
    assert.equal(batched.stats.batches, 1);
    assert.equal(single.stats.batches, ITEMS.length);
    // The shortest pair padded to ever longer partners: its score does not move a bit.
    const short = batched.encodePair(ITEMS[3]);
    const alone = (await batched.scoreTokens([short]))[0];
    for (const pad of [1, 7, 40]) {
      const partner = [...short, ...Array(pad).fill(short[1])];
      const [s] = await batched.scoreTokens([short, partner]);
      assert.equal(s, alone, `padding by ${pad} changed the score`);
    }
    // Order of items does not matter either.
    const rev = await batched.score([...ITEMS].reverse());
    assert.deepEqual(rev.reverse(), a);
  });
});

Deno.test("over-long pairs keep their head and final token, with a counted warning", async () => {
  const gpu = await getGpu();
  await withRewardModel({}, async (dir) => {
    const warnings: string[] = [];
    const rm = await RewardModel.load(gpu, dir, {
      maxTokens: 24,
      onWarning: (m) => warnings.push(m),
    });
    const ref = await refScorer(dir);
    const long = { query: "Reverse: abcdefghij", answer: "jihgfedcba and more words after it" };
    const full = rm.encodePair(long);
    assert.ok(full.length > 24);
    const got = await rm.score([long, ITEMS[0], long]);
    assert.equal(rm.stats.truncated, 2);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /truncated 2 of 3 pairs longer than 24 tokens/);
    assert.ok(warnings[0].includes(dir), warnings[0]);
    const cut = [...full.slice(0, 23), full[full.length - 1]];
    const want = ref(cut);
    assert.ok(Math.abs(got[0] - want) <= 1e-4 * Math.max(1, Math.abs(want)), `${got[0]} ${want}`);
    assert.equal(got[0], got[2]);
    await rm.score([long]);
    assert.equal(rm.stats.truncated, 3);
    assert.match(warnings[1], /3 truncated so far/);
  });
});

Deno.test("refusals: causal LM, several labels, no chat template, bad options and ids", async () => {
  const gpu = await getGpu();
  await withRewardModel({ architecture: "LlamaForCausalLM" }, async (dir) => {
    await assert.rejects(
      RewardModel.load(gpu, dir),
      (e: Error) =>
        e.message.includes(`${dir}/config.json`) && /LlamaForSequenceClass/.test(e.message),
    );
  });
  await withRewardModel({ numLabels: 2 }, async (dir) => {
    await assert.rejects(
      RewardModel.load(gpu, dir),
      /score\.weight must have 1 row.*num_labels = 2/,
    );
  });
  await withRewardModel({}, async (dir) => {
    const cfgPath = `${dir}/tokenizer_config.json`;
    const cfg = JSON.parse(await Deno.readTextFile(cfgPath));
    delete cfg.chat_template;
    await Deno.writeTextFile(cfgPath, JSON.stringify(cfg));
    await assert.rejects(
      RewardModel.load(gpu, dir),
      (e: Error) => e.message.includes(cfgPath) && /no chat_template/.test(e.message),
    );
  });
  await withRewardModel({}, async (dir) => {
    await assert.rejects(
      RewardModel.load(gpu, `${dir}/absent`),
      (e: Error) =>
        e.message.includes(`${dir}/absent has no config.json or tokenizer.json`) &&
        e.message.includes("huggingface-cli download Skywork/Skywork-Reward-V2-Llama-3.2-3B"),
    );
    await Deno.remove(`${dir}/tokenizer.json`);
    await assert.rejects(RewardModel.load(gpu, dir), /has no tokenizer\.json\. Download/);
  });
  await withRewardModel({ maxPositionEmbeddings: 32 }, async (dir) => {
    await assert.rejects(RewardModel.load(gpu, dir, { batchSize: 0 }), /batchSize must be/);
    await assert.rejects(
      RewardModel.load(gpu, dir, { maxTokens: 64 }),
      /maxTokens must be .*2\.\.32/,
    );
    const rm = await RewardModel.load(gpu, dir);
    assert.equal(rm.maxTokens, 32);
    await assert.rejects(rm.scoreTokens([[]]), /sequence 0 is empty/);
    await assert.rejects(rm.scoreTokens([[1, 500]]), /sequence 0 token 1 = 500 is outside/);
    await assert.rejects(rm.scoreTokens([Array(33).fill(5)]), /more than maxTokens 32/);
  });
});
