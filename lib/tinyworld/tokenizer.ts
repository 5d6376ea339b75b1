/**
 * The tiny world's character tokenizer, written as standard Hugging Face files so the tiny
 * model loads through exactly the same code as a Llama checkout.
 *
 * Shape (Llama 3's, minus the merges): ByteLevel pre-tokenizer and decoder, a BPE model with an
 * empty merge list, so every character is one token. The vocabulary is the special tokens, then
 * newline and the 95 printable ASCII characters (a superset of what tasks and prompts use, so
 * any prompt text from a manifest still encodes); anything else becomes <|unk|>.
 */

import { join } from "node:path";
import { specialTokenEntry } from "../model/tokenizer.ts";

/** Special tokens, in id order (ids 0..6). */
export const TINY_SPECIAL_TOKENS = {
  pad: "<|pad|>",
  bos: "<|bos|>",
  eos: "<|eos|>",
  unk: "<|unk|>",
  system: "<|system|>",
  user: "<|user|>",
  assistant: "<|assistant|>",
} as const;

/**
 * Chat template (Jinja): bos, then each turn as `<|role|>content<|eos|>`; the generation
 * prompt opens an assistant turn, so generation stops at eos. Content is not trimmed: the
 * judge must see answers exactly as written.
 */
export const TINY_CHAT_TEMPLATE = "{{ bos_token }}{% for message in messages %}" +
  "{% if message['role'] != 'system' and message['role'] != 'user' and message['role'] != 'assistant' %}" +
  "{{ raise_exception('tiny chat template: unknown role ' + message['role']) }}{% endif %}" +
  "{{ '<|' + message['role'] + '|>' + message['content'] + eos_token }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}";

/** The characters of the vocabulary, in id order after the special tokens. */
export function tinyCharacters(): string[] {
  const chars = ["\n"];
  for (let c = 0x20; c < 0x7f; c++) chars.push(String.fromCharCode(c));
  return chars;
}

/** GPT-2 byte-to-unicode mapping for the bytes we use (printable ASCII maps to itself). */
function byteLevelSymbol(ch: string): string {
  const b = ch.charCodeAt(0);
  if (b >= 0x21 && b <= 0x7e) return ch;
  if (b === 0x20) return "\u0120"; // "Ġ"
  if (b === 0x0a) return "\u010a"; // "Ċ"
  throw new Error(`tiny tokenizer: no byte-level symbol for code ${b}`);
}

/** The vocabulary, token string to id: specials first, then characters. */
export function tinyVocab(): Record<string, number> {
  const vocab: Record<string, number> = {};
  let id = 0;
  for (const s of Object.values(TINY_SPECIAL_TOKENS)) vocab[s] = id++;
  for (const ch of tinyCharacters()) vocab[byteLevelSymbol(ch)] = id++;
  return vocab;
}

/** Number of tokens in the vocabulary (the model's vocab_size). */
export const TINY_VOCAB_SIZE = Object.keys(TINY_SPECIAL_TOKENS).length + 96;

/** The `tokenizer.json` object. */
export function tinyTokenizerJson(): Record<string, unknown> {
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: Object.values(TINY_SPECIAL_TOKENS).map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: {
      type: "ByteLevel",
      add_prefix_space: false,
      trim_offsets: true,
      use_regex: false,
    },
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: TINY_SPECIAL_TOKENS.unk,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: tinyVocab(),
      merges: [],
    },
  };
}

/** The `tokenizer_config.json` object, with the chat template and special tokens. */
export function tinyTokenizerConfig(): Record<string, unknown> {
  const decoder: Record<string, unknown> = {};
  Object.values(TINY_SPECIAL_TOKENS).forEach((content, id) => {
    decoder[String(id)] = specialTokenEntry(content);
  });
  return {
    added_tokens_decoder: decoder,
    bos_token: TINY_SPECIAL_TOKENS.bos,
    eos_token: TINY_SPECIAL_TOKENS.eos,
    pad_token: TINY_SPECIAL_TOKENS.pad,
    unk_token: TINY_SPECIAL_TOKENS.unk,
    chat_template: TINY_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    model_input_names: ["input_ids", "attention_mask"],
    tokenizer_class: "PreTrainedTokenizerFast",
  };
}

/** Serialises as the files are written: 2-space JSON and a final newline (byte-stable). */
export function tinyTokenizerFiles(): {
  "tokenizer.json": string;
  "tokenizer_config.json": string;
} {
  return {
    "tokenizer.json": JSON.stringify(tinyTokenizerJson(), null, 2) + "\n",
    "tokenizer_config.json": JSON.stringify(tinyTokenizerConfig(), null, 2) + "\n",
  };
}

/** Writes `tokenizer.json` and `tokenizer_config.json` into `dir` (created if needed). */
export async function writeTinyTokenizer(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (const [name, text] of Object.entries(tinyTokenizerFiles())) {
    await Deno.writeTextFile(join(dir, name), text);
  }
}
