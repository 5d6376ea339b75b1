import assert from "node:assert/strict";
import {
  readCachedReplies,
  replyCacheKey,
  replyCachePath,
  writeCachedReplies,
} from "../lib/eval/reply_cache.ts";

const PARTS = {
  modelHash: "m",
  evalSetHash: "e",
  prompts: [[1, 2, 3], [4, 5]],
  temperature: 0.01,
  topP: 1,
  maxNewTokens: 8,
  seed: 1,
  stream: 0,
};
const REPLIES = {
  texts: ["a", "b"],
  tokens: [[7, 2], [8]],
  stopped: [true, false],
  promptTokens: [3, 2],
};

Deno.test("reply cache key: every input changes it", () => {
  const k = replyCacheKey(PARTS);
  assert.match(k, /^[0-9a-f]{64}$/);
  assert.equal(replyCacheKey({ ...PARTS, prompts: [[1, 2, 3], [4, 5]] }), k);
  const variants = [
    { modelHash: "m2" },
    { evalSetHash: "e2" },
    { prompts: [[1, 2, 3], [4, 6]] },
    { prompts: [[1, 2], [3, 4, 5]] },
    { temperature: 0 },
    { topP: 0.9 },
    { maxNewTokens: 9 },
    { seed: 2 },
    { stream: 1 },
  ];
  for (const v of variants) {
    assert.notEqual(replyCacheKey({ ...PARTS, ...v }), k, JSON.stringify(v));
  }
});

Deno.test("reply cache: round trip, misses, and every damaged entry named", async () => {
  const dir = await Deno.makeTempDir({ prefix: "eval_reply_cache_" });
  try {
    const key = replyCacheKey(PARTS);
    assert.equal(await readCachedReplies(dir, key, 2), null);
    const path = await writeCachedReplies(dir, key, { note: "x" }, REPLIES);
    assert.equal(path, replyCachePath(dir, key));
    assert.deepEqual(await readCachedReplies(dir, key, 2), REPLIES);
    const bad: [string, RegExp][] = [
      ["{oops", /not valid JSON.*delete it to regenerate/],
      [JSON.stringify({ key: "other", replies: REPLIES }), /field "key" is "other"/],
      [JSON.stringify({ key }), /field "replies\.texts" must be a list of 2 entries/],
      [
        JSON.stringify({ key, replies: { ...REPLIES, stopped: [true] } }),
        /field "replies\.stopped" must be a list of 2 entries/,
      ],
      [
        JSON.stringify({ key, replies: { ...REPLIES, texts: ["a", 3] } }),
        /field "replies\.texts" must hold strings/,
      ],
    ];
    for (const [text, re] of bad) {
      await Deno.writeTextFile(path, text);
      await assert.rejects(readCachedReplies(dir, key, 2), (e: Error) => {
        assert.ok(e.message.startsWith(path), e.message);
        assert.match(e.message, re);
        return true;
      });
    }
    // Right key, wrong number of replies for this eval set.
    await writeCachedReplies(dir, key, {}, REPLIES);
    await assert.rejects(readCachedReplies(dir, key, 3), /must be a list of 3 entries/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
