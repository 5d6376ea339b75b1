import assert from "node:assert/strict";
import { getGpu } from "../gpu/device.ts";
import { tinyTestConfig } from "../lib/model/random_model.ts";
import { LlamaModel } from "../lib/model/llama.ts";
import { loadTokenizer } from "../lib/model/tokenizer.ts";
import { TINY_VOCAB_SIZE, writeTinyTokenizer } from "../lib/tinyworld/tokenizer.ts";
import { generateReplies } from "../lib/model/chat_replies.ts";

Deno.test("generateReplies: replies independent of batching; bad options and long prompts refused", async () => {
  const gpu = await getGpu();
  const dir = await Deno.makeTempDir({ prefix: "eval_chat_replies_" });
  try {
    await writeTinyTokenizer(dir);
    const tok = await loadTokenizer(dir);
    const config = tinyTestConfig({ vocabSize: TINY_VOCAB_SIZE, maxPositionEmbeddings: 32 });
    const model = LlamaModel.synthetic(gpu, config, 3);
    const conv = ["a", "bb", "ccc", "dddd", "e"].map((c) => [{ role: "user", content: c }]);
    const opts = { temperature: 1, maxNewTokens: 5, seed: 9 };
    const all = await generateReplies(model, tok, conv, { ...opts, batchSize: 5 });
    const twos = await generateReplies(model, tok, conv, { ...opts, batchSize: 2 });
    assert.deepEqual(twos, all);
    // Prompt lengths: bos, <|user|>, text, eos, <|assistant|>.
    assert.deepEqual(all.promptTokens, [5, 6, 7, 8, 5]);
    all.tokens.forEach((t, i) => {
      assert.ok(t.length >= 1 && t.length <= 5);
      assert.equal(all.stopped[i], tok.stopIds.includes(t[t.length - 1]));
    });
    await assert.rejects(
      generateReplies(model, tok, conv, { ...opts, batchSize: 0 }),
      /batchSize must be an integer >= 1, got 0/,
    );
    await assert.rejects(
      generateReplies(model, tok, conv, { ...opts, maxNewTokens: 0 }),
      /maxNewTokens must be an integer >= 1, got 0/,
    );
    await assert.rejects(
      generateReplies(model, tok, [[{ role: "user", content: "x".repeat(25) }]], opts),
      /conversation 0 has 29 prompt tokens; with maxNewTokens 5 that exceeds the model's 32/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
