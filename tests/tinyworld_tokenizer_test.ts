/** The tiny tokenizer loads with @huggingface/tokenizers, round-trips task text and chats. */

import assert from "node:assert/strict";
import { Tokenizer } from "@huggingface/tokenizers";
import { Template } from "@huggingface/jinja";
import { Rng } from "../lib/tinyworld/prng.ts";
import { BEYOND_LEVEL, FAMILY_NAMES, generateTask } from "../lib/tinyworld/tasks.ts";
import {
  TINY_SPECIAL_TOKENS,
  TINY_VOCAB_SIZE,
  tinyTokenizerConfig,
  tinyTokenizerFiles,
  tinyTokenizerJson,
  writeTinyTokenizer,
} from "../lib/tinyworld/tokenizer.ts";
import { TINY_JUDGE_PROMPT } from "../lib/tinyworld/rubric.ts";
import { renderChallengerPrompt, TINY_CHALLENGER_PROMPT } from "../lib/tinyworld/challenger.ts";
import { tinyMixture } from "../lib/tinyworld/mixture.ts";
import { loadTokenizer } from "../lib/model/tokenizer.ts";
import { tokenizeChat } from "../lib/train/data.ts";

const tokenizer = new Tokenizer(tinyTokenizerJson(), tinyTokenizerConfig());

function encode(text: string): number[] {
  return tokenizer.encode(text, { add_special_tokens: false }).ids;
}

Deno.test("tiny tokenizer: one token per character, every task text round-trips", () => {
  const rng = new Rng(7);
  let n = 0;
  for (const family of FAMILY_NAMES) {
    for (let level = 1; level <= BEYOND_LEVEL; level++) {
      for (let k = 0; k < 20; k++) {
        const { text, answer } = generateTask(rng, family, level);
        for (const s of [text, answer]) {
          const ids = encode(s);
          assert.equal(ids.length, s.length, `one token per char in "${s}"`);
          assert.ok(ids.every((id) => id >= 7 && id < TINY_VOCAB_SIZE), `no special/unk in "${s}"`);
          assert.equal(tokenizer.decode(ids), s);
          n++;
        }
      }
    }
  }
  assert.ok(n > 700);
});

Deno.test("tiny tokenizer: prompts, whitespace and special tokens round-trip; others are unk", () => {
  for (
    const s of [TINY_JUDGE_PROMPT, TINY_CHALLENGER_PROMPT, "  two  spaces \n\nnewlines ", "~!{}"]
  ) {
    const ids = encode(s);
    assert.equal(ids.length, s.length);
    assert.equal(tokenizer.decode(ids), s);
  }
  const ids = encode("<|bos|><|user|>add: 1 2<|eos|>");
  assert.deepEqual(ids.slice(0, 2), [1, 5]);
  assert.equal(ids[ids.length - 1], 2);
  assert.equal(tokenizer.decode(ids, { skip_special_tokens: true }), "add: 1 2");
  assert.equal(tokenizer.token_to_id(TINY_SPECIAL_TOKENS.eos), 2);
  assert.equal(tokenizer.token_to_id(TINY_SPECIAL_TOKENS.pad), 0);
  const unk = tokenizer.token_to_id(TINY_SPECIAL_TOKENS.unk);
  assert.deepEqual(encode("a\tb"), [encode("a")[0], unk, encode("b")[0]]);
  assert.equal(tokenizer.get_vocab(true).size, TINY_VOCAB_SIZE);
});

Deno.test("tiny chat template renders the three roles' turns with bos/eos", () => {
  const config = tinyTokenizerConfig();
  const template = new Template(config.chat_template as string);
  const render = (messages: { role: string; content: string }[], add_generation_prompt: boolean) =>
    template.render({
      messages,
      bos_token: config.bos_token,
      eos_token: config.eos_token,
      add_generation_prompt,
    });
  assert.equal(
    render(
      [{ role: "user", content: "reverse: abc" }, { role: "assistant", content: "cba" }],
      false,
    ),
    "<|bos|><|user|>reverse: abc<|eos|><|assistant|>cba<|eos|>",
  );
  const challenger = renderChallengerPrompt({ task: "", template: "" });
  const prompt = render([{ role: "user", content: challenger }], true);
  assert.equal(prompt, `<|bos|><|user|>${challenger}<|eos|><|assistant|>`);
  const ids = encode(prompt);
  assert.equal(ids.length, challenger.length + 4);
  assert.equal(tokenizer.decode(ids), prompt);
  assert.equal(
    render([{ role: "system", content: " s " }, { role: "user", content: "x\n" }], true),
    "<|bos|><|system|> s <|eos|><|user|>x\n<|eos|><|assistant|>",
  );
  assert.throws(() => render([{ role: "tool", content: "x" }], false), /unknown role tool/);
});

Deno.test("writeTinyTokenizer is deterministic and matches the committed assets", async () => {
  const a = await Deno.makeTempDir();
  const b = await Deno.makeTempDir();
  try {
    await writeTinyTokenizer(a);
    await writeTinyTokenizer(b);
    const assets = new URL("../experiments/assets/tiny/", import.meta.url);
    for (const name of ["tokenizer.json", "tokenizer_config.json"] as const) {
      const x = await Deno.readTextFile(`${a}/${name}`);
      assert.equal(x, await Deno.readTextFile(`${b}/${name}`));
      assert.equal(x, tinyTokenizerFiles()[name]);
      assert.equal(
        x,
        await Deno.readTextFile(new URL(name, assets)),
        `experiments/assets/tiny/${name} is stale: regenerate with writeTinyTokenizer`,
      );
    }
  } finally {
    await Deno.remove(a, { recursive: true });
    await Deno.remove(b, { recursive: true });
  }
});

Deno.test("the committed tiny tokenizer loads through the Llama loader; chats score the answers", async () => {
  const tok = await loadTokenizer(new URL("../experiments/assets/tiny", import.meta.url).pathname);
  assert.equal(tok.bosId, 1);
  assert.deepEqual(tok.stopIds, [2]);
  assert.equal(tok.padId, 0);
  assert.equal(tok.vocabSize, TINY_VOCAB_SIZE);
  for (const e of tinyMixture({ seed: 3, count: 300 })) {
    const { tokens, scored } = tokenizeChat(tok, e.messages);
    assert.equal(tok.decode(tokens), tok.renderChat(e.messages, { addGenerationPrompt: false }));
    const target = tok.decode(tokens.filter((_, i) => scored[i]));
    assert.equal(target, e.messages[1].content + TINY_SPECIAL_TOKENS.eos);
  }
});
