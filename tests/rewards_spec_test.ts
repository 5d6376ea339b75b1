import assert from "node:assert/strict";
import { getGpu } from "../gpu/device.ts";
import { tinyTestConfig, writeRandomModel } from "../lib/model/random_model.ts";
import { TINY_VOCAB_SIZE, writeTinyTokenizer } from "../lib/tinyworld/tokenizer.ts";
import { createTaskReward, parseRewardSpec } from "../lib/rewards/reward_spec.ts";
import { RewardModel } from "../lib/rewards/reward_model.ts";
import { VerifierTaskReward } from "../lib/rewards/verifier_reward.ts";

Deno.test("parseRewardSpec: valid specs pass, every bad field is named", () => {
  assert.deepEqual(parseRewardSpec({ kind: "verifier" }, "m.reward"), {
    kind: "verifier",
    malformedQuery: undefined,
    partialCredit: undefined,
  });
  assert.deepEqual(parseRewardSpec({ kind: "model", path: "/rm", batchSize: 2 }, "m.reward"), {
    kind: "model",
    path: "/rm",
    batchSize: 2,
    maxTokens: undefined,
  });
  const cases: [unknown, RegExp][] = [
    [null, /^Error: m\.reward: expected an object with a "kind" field/],
    [[], /^Error: m\.reward: expected an object/],
    [{}, /^Error: m\.reward\.kind: must be one of verifier, model, got undefined/],
    [{ kind: "judge" }, /^Error: m\.reward\.kind: .*got "judge"/],
    [
      { kind: "verifier", path: "/x" },
      /^Error: m\.reward\.path: unknown field for a "verifier" reward/,
    ],
    [
      { kind: "verifier", malformedQuery: "min" },
      /^Error: m\.reward\.malformedQuery: must be "max" or "zero"/,
    ],
    [
      { kind: "verifier", partialCredit: 1.5 },
      /^Error: m\.reward\.partialCredit: must be a number in \[0, 1\]/,
    ],
    [{ kind: "model" }, /^Error: m\.reward\.path: the reward model directory is required/],
    [{ kind: "model", path: "" }, /^Error: m\.reward\.path: /],
    [
      { kind: "model", path: "/rm", batchSize: 0 },
      /^Error: m\.reward\.batchSize: must be an integer >= 1, got 0/,
    ],
    [
      { kind: "model", path: "/rm", maxTokens: "9" },
      /^Error: m\.reward\.maxTokens: must be an integer >= 1/,
    ],
    [
      { kind: "model", path: "/rm", partialCredit: 0 },
      /^Error: m\.reward\.partialCredit: unknown field/,
    ],
  ];
  for (const [v, re] of cases) assert.throws(() => parseRewardSpec(v, "m.reward"), re);
});

Deno.test("createTaskReward builds the verifier and loads a reward model directory", async () => {
  const gpu = await getGpu();
  const v = await createTaskReward(gpu, { kind: "verifier", malformedQuery: "zero" });
  assert.ok(v instanceof VerifierTaskReward);
  assert.equal(v.verifier.malformedQuery, "zero");
  assert.deepEqual(await v.score([{ query: "garbage", answer: "x" }]), [0]);

  const dir = await Deno.makeTempDir({ prefix: "rewards_spec_" });
  try {
    await assert.rejects(
      createTaskReward(gpu, { kind: "model", path: `${dir}/rm` }),
      (e: Error) =>
        e.message.includes(`${dir}/rm has no config.json or tokenizer.json`) &&
        e.message.includes("huggingface-cli download Skywork/Skywork-Reward-V2-Llama-3.2-3B"),
    );
    const config = tinyTestConfig({
      architecture: "LlamaForSequenceClassification",
      vocabSize: TINY_VOCAB_SIZE,
    });
    await writeRandomModel(`${dir}/rm`, config, { dtype: "BF16", seed: 4 });
    await assert.rejects(
      createTaskReward(gpu, { kind: "model", path: `${dir}/rm` }),
      /has no tokenizer\.json\. Download/,
    );
    await writeTinyTokenizer(`${dir}/rm`);
    const rm = await createTaskReward(gpu, { kind: "model", path: `${dir}/rm`, batchSize: 2 });
    assert.ok(rm instanceof RewardModel);
    assert.equal(rm.batchSize, 2);
    const s = await rm.score([{ query: "q", answer: "a" }, { query: "q", answer: "b" }]);
    assert.equal(s.length, 2);
    assert.ok(s.every(Number.isFinite));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
