import assert from "node:assert/strict";
import {
  type ChatMessage,
  DataOrder,
  generatedDataset,
  parseChatJsonl,
  registerDataset,
  tokenizeChat,
} from "../lib/train/data.ts";

Deno.test("JSONL chat examples are parsed and bad lines are named by file and line", () => {
  const ok = parseChatJsonl(
    '{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}\n\n',
    "d.jsonl",
  );
  assert.equal(ok.length, 1);
  assert.equal(ok[0].messages[1].content, "yo");
  const good = '{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}';
  assert.throws(() => parseChatJsonl(`${good}\n{oops`, "d.jsonl"), /d\.jsonl:2: invalid JSON/);
  assert.throws(
    () => parseChatJsonl(`${good}\n{"messages":[{"role":"bot","content":"x"}]}`, "d.jsonl"),
    /d\.jsonl:2: messages\[0\]\.role must be one of/,
  );
  assert.throws(
    () => parseChatJsonl('{"messages":[{"role":"user","content":"x"}]}', "e.jsonl"),
    /e\.jsonl:1: no assistant message/,
  );
  assert.throws(
    () => parseChatJsonl('{"messages":[{"role":"user","content":3}]}', "e.jsonl"),
    /e\.jsonl:1: messages\[0\]\.content must be a string/,
  );
  assert.throws(() => parseChatJsonl("\n", "f.jsonl"), /f\.jsonl: no examples/);
});

/** A character-level "template": <r>content</r> per message, generation prompt "<a>". */
const charEncoder = {
  encodeChat(messages: ChatMessage[], opts: { addGenerationPrompt: boolean }): number[] {
    let s = "^";
    for (const m of messages) s += `<${m.role[0]}>${m.content}|`;
    if (opts.addGenerationPrompt) s += "<a>";
    return [...s].map((c) => c.charCodeAt(0));
  },
};

Deno.test("tokenizeChat scores exactly the assistant turns and their end marker", () => {
  const msgs: ChatMessage[] = [
    { role: "user", content: "q" },
    { role: "assistant", content: "ab" },
    { role: "user", content: "r" },
    { role: "assistant", content: "c" },
  ];
  const { tokens, scored } = tokenizeChat(charEncoder, msgs);
  const text = String.fromCharCode(...tokens);
  assert.equal(text, "^<u>q|<a>ab|<u>r|<a>c|");
  const picked = tokens.filter((_, i) => scored[i]).map((t) => String.fromCharCode(t)).join("");
  assert.equal(picked, "ab|c|");
});

Deno.test("a template that is not prefix-stable is refused", () => {
  const unstable = {
    encodeChat: (m: ChatMessage[], o: { addGenerationPrompt: boolean }) =>
      o.addGenerationPrompt ? [9, 9, 9, 9, 9, 9] : m.map((_, i) => i),
  };
  assert.throws(
    () =>
      tokenizeChat(unstable, [{ role: "user", content: "x" }, { role: "assistant", content: "y" }]),
    /not prefix-stable around message 1/,
  );
});

Deno.test("generated datasets are looked up by name", () => {
  registerDataset("test-counting", (params, seed) => ({
    description: `counting ${JSON.stringify(params)} seed ${seed}`,
    size: null,
    example: (i) => ({
      messages: [{ role: "user", content: `${i}` }, { role: "assistant", content: `${i + 1}` }],
    }),
  }));
  const d = generatedDataset("test-counting", {}, 3);
  assert.equal(d.example(41).messages[1].content, "42");
  assert.throws(() => registerDataset("test-counting", () => d), /already registered/);
  assert.throws(() => generatedDataset("nope", {}, 1), /unknown dataset generator "nope"/);
});

Deno.test("DataOrder: each epoch is a permutation, deterministic in (seed, position)", () => {
  const a = new DataOrder(10, 5, true), b = new DataOrder(10, 5, true);
  const epoch0 = Array.from({ length: 10 }, (_, p) => a.indexAt(p));
  const epoch1 = Array.from({ length: 10 }, (_, p) => a.indexAt(10 + p));
  assert.deepEqual([...epoch0].sort((x, y) => x - y), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual([...epoch1].sort((x, y) => x - y), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.notDeepEqual(epoch0, epoch1);
  // Random access (as after a resume) gives the same answer as reading in order.
  assert.equal(b.indexAt(13), epoch1[3]);
  assert.equal(b.indexAt(4), epoch0[4]);
  assert.notDeepEqual(
    Array.from({ length: 10 }, (_, p) => new DataOrder(10, 6, true).indexAt(p)),
    epoch0,
  );
  assert.equal(new DataOrder(10, 5, false).indexAt(27), 7);
  assert.equal(new DataOrder(null, 5, true).indexAt(27), 27);
});
