// Lengths checked before work: prompt + new tokens against the model's positions, and every
// buffer of a generation against the device's largest binding, with one clear error.
import assert from "node:assert/strict";
import { getGpu } from "../gpu/device.ts";
import { generate } from "../lib/model/generate.ts";
import {
  checkGenerationFits,
  generationBuffers,
  GenerationLimitError,
} from "../lib/model/generation_limits.ts";
import { LlamaModel } from "../lib/model/llama.ts";
import { tinyTestConfig } from "../lib/model/random_model.ts";
import { UserError } from "../lib/util/user_error.ts";
import { cli } from "./cli_helpers.ts";

const config = tinyTestConfig(); // 128 positions
const GiB = 2 ** 30;

Deno.test("positions: prompt + new tokens past max_position_embeddings is refused by name", () => {
  checkGenerationFits(config, GiB, { promptLengths: [100, 20], maxNewTokens: 28 }, "x");
  assert.throws(
    () => checkGenerationFits(config, GiB, { promptLengths: [100, 20], maxNewTokens: 29 }, "x"),
    (e: unknown) => {
      assert.ok(e instanceof GenerationLimitError && e instanceof UserError);
      assert.equal(
        e.message,
        "x: the longest prompt has 100 tokens and up to 29 new tokens are asked: 129 positions, " +
          "more than the model's 128 (max_position_embeddings); shorten the prompt or ask for " +
          "fewer new tokens",
      );
      return true;
    },
  );
  // A huge count is a positions error, not an internal buffer message.
  assert.throws(
    () => checkGenerationFits(config, GiB, { promptLengths: [3], maxNewTokens: 1e9 }, "cli"),
    /1000000003 positions, more than the model's 128/,
  );
});

Deno.test("buffers: the KV cache, logits and weights against the device's largest binding", () => {
  const s = { promptLengths: Array(64).fill(60), maxNewTokens: 60 };
  const kv = generationBuffers(config, s)[0];
  assert.equal(kv.bytes, 64 * 120 * 2 * 8 * 4);
  checkGenerationFits(config, kv.bytes, s, "x"); // exactly at the limit: fine
  assert.throws(
    () => checkGenerationFits(config, kv.bytes - 1, s, "rl rollout"),
    /^GenerationLimitError: rl rollout: the KV cache of one layer \(64 sequences x 120 positions/,
  );
  assert.throws(
    () =>
      checkGenerationFits(config, GiB, { promptLengths: [1], maxNewTokens: 1 }, "x", [
        { name: "model.embed_tokens.weight", bytes: GiB + 1 },
      ]),
    /tensor model\.embed_tokens\.weight takes 1\.00 GiB, more than this device's largest/,
  );
});

Deno.test("generate() refuses a too-long prompt before any GPU work", async () => {
  const gpu = await getGpu();
  const model = LlamaModel.synthetic(gpu, config, 1);
  await assert.rejects(
    () =>
      generate(model, [Array(120).fill(5)], {
        maxNewTokens: 16,
        temperature: 0,
        topP: 1,
        seed: 0,
        stream: 0,
        stopIds: [],
      }),
    /generate: the longest prompt has 120 tokens and up to 16 new tokens are asked: 136/,
  );
});

Deno.test("model generate: a prompt past the positions is one clear error, before loading", async () => {
  const base = "results/tiny-pretrain/6039cb339f555af1/checkpoints/step-1500"; // 512 positions
  const long = await cli(["model", "generate", "--model", base, "--prompt", "a".repeat(600)]);
  assert.equal(long.code, 1, long.stderr);
  assert.match(long.stderr, /^error: model generate: the longest prompt has 601 tokens/m);
  assert.doesNotMatch(long.stderr, /^loading /m, "refused before the weights load");
  const huge = await cli([
    "model",
    "generate",
    "--model",
    base,
    "--prompt",
    "abc",
    "--max-new-tokens",
    "1000000000",
  ]);
  assert.equal(huge.code, 1);
  assert.match(huge.stderr, /1000000004 positions, more than the model's 512/);
  assert.doesNotMatch(huge.stderr, /buffer|\n\s+at /);
});
