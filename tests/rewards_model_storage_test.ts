import assert from "node:assert/strict";
import { getGpu } from "../gpu/device.ts";
import { tinyTestConfig, writeRandomModel } from "../lib/model/random_model.ts";
import type { Dtype } from "../lib/model/safetensors/format.ts";
import { TINY_VOCAB_SIZE, writeTinyTokenizer } from "../lib/tinyworld/tokenizer.ts";
import { RewardModel } from "../lib/rewards/reward_model.ts";

const ITEMS = [
  { query: "Reverse: abc", answer: "cba" },
  { query: "Add 12 and 30", answer: "42" },
  { query: "Hi", answer: "" },
];

async function withRewardModel(dtype: Dtype, f: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "rewards_storage_" });
  try {
    const config = tinyTestConfig({
      architecture: "LlamaForSequenceClassification",
      vocabSize: TINY_VOCAB_SIZE,
      numLabels: 1,
      padTokenId: 0,
    });
    await writeRandomModel(dir, config, { dtype, seed: 12, std: 0.3 });
    await writeTinyTokenizer(dir);
    await f(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a BF16 reward model loads 16-bit by default and scores the same as in f32", async () => {
  const gpu = await getGpu();
  await withRewardModel("BF16", async (dir) => {
    const auto = await RewardModel.load(gpu, dir);
    const f32 = await RewardModel.load(gpu, dir, { storage: "f32" });
    assert.equal(auto.model.storage, "bf16");
    assert.equal(f32.model.storage, "f32");
    const a = await auto.score(ITEMS), b = await f32.score(ITEMS);
    assert.deepEqual(
      Array.from(new Uint32Array(Float32Array.from(a).buffer)),
      Array.from(new Uint32Array(Float32Array.from(b).buffer)),
    );
  });
});

Deno.test("an F32 reward model stays f32 unless bf16 is asked for (then rounded)", async () => {
  const gpu = await getGpu();
  await withRewardModel("F32", async (dir) => {
    assert.equal((await RewardModel.load(gpu, dir)).model.storage, "f32");
    const rounded = await RewardModel.load(gpu, dir, { storage: "bf16" });
    assert.equal(rounded.model.storage, "bf16");
    const scores = await rounded.score(ITEMS);
    assert.ok(scores.every(Number.isFinite), `${scores}`);
  });
});
