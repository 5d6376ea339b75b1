/**
 * Tokenizer and chat template of an HF model directory: `tokenizer.json` through
 * @huggingface/tokenizers, `tokenizer_config.json` (chat template, special tokens) through
 * @huggingface/jinja, plus the stop tokens from `generation_config.json` / `config.json` when
 * present.
 *
 * Reproducibility: templates that show today's date (Llama 3.1+ via `strftime_now` or
 * `date_string`) see a fixed date instead, "26 Jul 2024" unless the `date` option says
 * otherwise, so a rendered prompt never depends on when it was rendered.
 *
 * @module
 */
import { Tokenizer } from "@huggingface/tokenizers";
import { Environment, Interpreter, Template } from "@huggingface/jinja";
import { ModelFormatError } from "./safetensors/format.ts";
import { readJsonFile, readJsonFileIfPresent } from "../util/json_file.ts";
import { isPlainObject } from "../util/plain_object.ts";

/** One chat message. */
export interface ChatMessage {
  role: string;
  content: string;
}

/** Encoding, decoding and chat rendering for one model. */
export interface ChatTokenizer {
  /** Token ids of `text`; `addSpecialTokens` (default true) adds BOS as the model expects. */
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  /** Text of `ids`; exact inverse of encode (no space clean-up) unless special tokens skipped. */
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
  /** The chat template applied to `messages`. */
  renderChat(messages: ChatMessage[], opts: { addGenerationPrompt: boolean }): string;
  /** The rendered chat encoded as is (the template places BOS; none is added). */
  encodeChat(messages: ChatMessage[], opts: { addGenerationPrompt: boolean }): number[];
  bosId: number | null;
  /** Ids that end a generation: eos ids plus end-of-turn tokens (<|eot_id|>, <|eom_id|>). */
  stopIds: number[];
  /** Id used for padding (pad token, else a dedicated pad token, else the first stop id). */
  padId: number;
  /** One past the largest token id (the embedding rows a model needs at least). */
  vocabSize: number;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
  /** The chat template text, or null when the tokenizer has none. */
  chatTemplate: string | null;
}

/** Options of {@link loadTokenizer}. */
export interface TokenizerOptions {
  /** Date templates see: a Date (UTC fields) or "DD Mon YYYY"; default "26 Jul 2024". */
  date?: Date | string;
}

const MONTHS = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];
const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/** The default date of Llama 3.1+ templates when none is given. */
export const DEFAULT_CHAT_DATE = "26 Jul 2024";

/** Parses "DD Mon YYYY" (the form of Llama's date_string) to a UTC date. */
export function parseChatDate(s: string): Date {
  const m = /^(\d{1,2}) ([A-Z][a-z]{2}) (\d{4})$/.exec(s);
  const month = m ? MONTHS.findIndex((x) => x.startsWith(m[2])) : -1;
  if (!m || month < 0) throw new RangeError(`chat date ${JSON.stringify(s)} is not "DD Mon YYYY"`);
  const d = new Date(Date.UTC(Number(m[3]), month, Number(m[1])));
  if (d.getUTCDate() !== Number(m[1])) throw new RangeError(`chat date ${s} does not exist`);
  return d;
}

/** A locale-independent strftime over the UTC fields of `date` (Python's common codes). */
export function strftime(date: Date, format: string): string {
  const p2 = (n: number) => String(n).padStart(2, "0");
  return format.replace(/%[YymdbBaAHMSjp%]/g, (t) => {
    switch (t) {
      case "%Y":
        return String(date.getUTCFullYear());
      case "%y":
        return p2(date.getUTCFullYear() % 100);
      case "%m":
        return p2(date.getUTCMonth() + 1);
      case "%d":
        return p2(date.getUTCDate());
      case "%b":
        return MONTHS[date.getUTCMonth()].slice(0, 3);
      case "%B":
        return MONTHS[date.getUTCMonth()];
      case "%a":
        return DAYS[date.getUTCDay()].slice(0, 3);
      case "%A":
        return DAYS[date.getUTCDay()];
      case "%H":
        return p2(date.getUTCHours());
      case "%M":
        return p2(date.getUTCMinutes());
      case "%S":
        return p2(date.getUTCSeconds());
      case "%p":
        return date.getUTCHours() < 12 ? "AM" : "PM";
      case "%j": {
        const start = Date.UTC(date.getUTCFullYear(), 0, 1);
        return String(Math.floor((date.getTime() - start) / 86400000) + 1).padStart(3, "0");
      }
      default:
        return "%";
    }
  });
}

/** Python's range(stop) / range(start, stop[, step]) as a list, as Jinja templates use it. */
function pyRange(a: number, b?: number, step = 1): number[] {
  const [start, stop] = b === undefined ? [0, a] : [a, b];
  if (step === 0) throw new Error("range() step must not be zero");
  const out: number[] = [];
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
  return out;
}

/** A JSON object file of the tokenizer folder; an absent optional one gives null. */
async function readJson(path: string, required: boolean): Promise<Record<string, unknown> | null> {
  const modelFormatError = (m: string) => new ModelFormatError(m);
  const json = required
    ? await readJsonFile(path, modelFormatError)
    : await readJsonFileIfPresent(path, modelFormatError);
  if (json === undefined) return null;
  if (!isPlainObject(json)) throw new ModelFormatError(`${path}: not a JSON object`);
  return json;
}

/** A special token in tokenizer_config.json: a string or an AddedToken-like {content}. */
function tokenString(
  cfg: Record<string, unknown>,
  key: string,
  path: string,
): string | null {
  const v = cfg[key];
  if (v === undefined || v === null) return null;
  if (typeof v === "string") return v;
  if (typeof v === "object" && typeof (v as { content?: unknown }).content === "string") {
    return (v as { content: string }).content;
  }
  throw new ModelFormatError(`${path}: ${key} must be a string or {content}`);
}

function chatTemplateOf(cfg: Record<string, unknown>, path: string): string | null {
  const t = cfg.chat_template;
  if (t === undefined || t === null) return null;
  if (typeof t === "string") return t;
  if (Array.isArray(t)) {
    const def = t.find((x) => x && typeof x === "object" && x.name === "default");
    if (def && typeof def.template === "string") return def.template;
  }
  throw new ModelFormatError(
    `${path}: chat_template must be a string or a list with a "default" entry`,
  );
}

/** Eos ids of a config.json / generation_config.json (number or list), if any. */
function eosIdsOf(cfg: Record<string, unknown> | null, path: string): number[] {
  const e = cfg?.eos_token_id;
  if (e === undefined || e === null) return [];
  const list = Array.isArray(e) ? e : [e];
  for (const x of list) {
    if (!Number.isSafeInteger(x) || (x as number) < 0) {
      throw new ModelFormatError(`${path}: eos_token_id ${JSON.stringify(e)} is not token ids`);
    }
  }
  return list as number[];
}

/**
 * Loads the tokenizer of an HF model directory (`tokenizer.json` required,
 * `tokenizer_config.json`, `generation_config.json` and `config.json` optional).
 */
export async function loadTokenizer(
  dir: string,
  opts: TokenizerOptions = {},
): Promise<ChatTokenizer> {
  const tokPath = `${dir}/tokenizer.json`;
  const cfgPath = `${dir}/tokenizer_config.json`;
  const tokJson = (await readJson(tokPath, true))!;
  const cfg = (await readJson(cfgPath, false)) ?? {};
  const genCfgPath = `${dir}/generation_config.json`;
  const genCfg = await readJson(genCfgPath, false);
  const modelCfgPath = `${dir}/config.json`;
  const modelCfg = await readJson(modelCfgPath, false);

  let tok: Tokenizer;
  try {
    tok = new Tokenizer(tokJson, cfg);
  } catch (e) {
    throw new ModelFormatError(`${tokPath}: cannot build the tokenizer (${(e as Error).message})`);
  }
  const vocab = tok.get_vocab(true);
  let vocabSize = 0;
  for (const id of vocab.values()) vocabSize = Math.max(vocabSize, id + 1);

  const idOf = (key: string): number | null => {
    const s = tokenString(cfg, key, cfgPath);
    if (s === null) return null;
    const id = tok.token_to_id(s);
    if (id === undefined) {
      throw new ModelFormatError(`${cfgPath}: ${key} ${JSON.stringify(s)} is not in ${tokPath}`);
    }
    return id;
  };
  const bosToken = tokenString(cfg, "bos_token", cfgPath);
  const eosToken = tokenString(cfg, "eos_token", cfgPath);
  const padToken = tokenString(cfg, "pad_token", cfgPath);
  const unkToken = tokenString(cfg, "unk_token", cfgPath);
  const bosId = idOf("bos_token");
  const eosId = idOf("eos_token");

  const stop = new Set<number>();
  if (eosId !== null) stop.add(eosId);
  for (const id of eosIdsOf(genCfg, genCfgPath)) stop.add(id);
  for (const id of eosIdsOf(modelCfg, modelCfgPath)) stop.add(id);
  for (const t of ["<|eot_id|>", "<|eom_id|>"]) {
    const id = tok.token_to_id(t);
    if (id !== undefined) stop.add(id);
  }
  const stopIds = [...stop].sort((a, b) => a - b);
  const padId = idOf("pad_token") ?? tok.token_to_id("<|finetune_right_pad_id|>") ??
    stopIds[0] ?? 0;

  // Some tokenizer.json files add BOS in their post-processor (Meta's Llama 3), others leave it
  // to the slow tokenizer's add_bos_token (default true when a BOS exists); do the same.
  const probe = "a";
  const postAddsSpecial = tok.encode(probe).ids.length !==
    tok.encode(probe, { add_special_tokens: false }).ids.length;
  const addBos = !postAddsSpecial && bosId !== null && cfg.add_bos_token !== false;

  const encode = (text: string, o: { addSpecialTokens?: boolean } = {}): number[] => {
    const add = o.addSpecialTokens ?? true;
    const ids = tok.encode(text, { add_special_tokens: add }).ids;
    return add && addBos ? [bosId!, ...ids] : ids;
  };

  const chatTemplate = chatTemplateOf(cfg, cfgPath);
  const template = chatTemplate === null ? null : (() => {
    try {
      return new Template(chatTemplate);
    } catch (e) {
      throw new ModelFormatError(
        `${cfgPath}: chat_template does not parse: ${(e as Error).message}`,
      );
    }
  })();
  const date = opts.date === undefined
    ? parseChatDate(DEFAULT_CHAT_DATE)
    : typeof opts.date === "string"
    ? parseChatDate(opts.date)
    : opts.date;

  const renderChat = (messages: ChatMessage[], o: { addGenerationPrompt: boolean }): string => {
    if (!template) throw new ModelFormatError(`${cfgPath}: no chat_template`);
    // Template.render's globals include a clock-reading strftime_now that its items cannot
    // override, so the environment is built here with the same globals and a fixed date.
    const env = new Environment();
    const vars: Record<string, unknown> = {
      true: true,
      false: false,
      none: null,
      True: true,
      False: false,
      None: null,
      range: pyRange,
      raise_exception: (msg: string) => {
        throw new Error(`chat template of ${cfgPath}: ${msg}`);
      },
      strftime_now: (format: string) => strftime(date, format),
      date_string: strftime(date, "%d %b %Y"),
      messages,
      add_generation_prompt: o.addGenerationPrompt,
      bos_token: bosToken ?? "",
      eos_token: eosToken ?? "",
      pad_token: padToken ?? "",
      unk_token: unkToken ?? "",
    };
    for (const [k, v] of Object.entries(vars)) env.set(k, v);
    return String(new Interpreter(env).run(template.parsed).value);
  };

  return {
    encode,
    decode: (ids, o = {}) =>
      ids.length === 0 ? "" : tok.decode(ids, {
        skip_special_tokens: o.skipSpecialTokens ?? false,
        clean_up_tokenization_spaces: false,
      }),
    renderChat,
    encodeChat: (messages, o) => encode(renderChat(messages, o), { addSpecialTokens: false }),
    bosId,
    stopIds,
    padId,
    vocabSize,
    tokenToId: (s) => tok.token_to_id(s),
    idToToken: (id) => tok.id_to_token(id),
    chatTemplate,
  };
}
