/**
 * Chat datasets for supervised fine-tuning: a JSONL file of `{"messages": [{role, content}...]}`
 * lines (validated; errors name the file and line) or a registered generator, both seen through
 * one small {@link DatasetProvider} interface with deterministic, index-addressed examples, so a
 * run's data position is a single integer and resuming replays exactly.
 *
 * @module
 */
import { Registry } from "../util/registry.ts";
import { UserError } from "../util/user_error.ts";

/** A chat role. */
export type ChatRole = "system" | "user" | "assistant";

/** One chat message. */
export interface ChatMessage {
  role: ChatRole;
  content: string;
}

/** One training example: a conversation whose assistant turns are the targets. */
export interface ChatExample {
  messages: ChatMessage[];
}

/**
 * A deterministic source of chat examples. `example(i)` must return the same conversation for
 * the same `i` every time (generators derive it from their seed and `i`).
 */
export interface DatasetProvider {
  /** What the data is, for logs and provenance (file path or generator name and params). */
  readonly description: string;
  /** Number of examples, or null for an unbounded generator. */
  readonly size: number | null;
  example(index: number): ChatExample;
}

/** Makes a provider from manifest parameters and a seed. */
export type DatasetFactory = (params: Record<string, unknown>, seed: number) => DatasetProvider;

/** Dataset generators other parts of the program provide (the tiny world's), by name. */
export const DATASETS: Registry<DatasetFactory> = new Registry<DatasetFactory>(
  "dataset generator",
);

/** Registers a named dataset generator (e.g. the tiny world's); a name may be taken once. */
export function registerDataset(name: string, factory: DatasetFactory): void {
  DATASETS.register(name, factory);
}

/** Instantiates a registered generator; unknown names list the known ones. */
export function generatedDataset(
  name: string,
  params: Record<string, unknown>,
  seed: number,
): DatasetProvider {
  return DATASETS.get(name)(params, seed);
}

const ROLES: readonly string[] = ["system", "user", "assistant"];

/** Validates one parsed example; `where` names the file and line. */
export function parseChatExample(value: unknown, where: string): ChatExample {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new UserError(`${where}: expected a JSON object with a "messages" array`);
  }
  const msgs = (value as { messages?: unknown }).messages;
  if (!Array.isArray(msgs) || msgs.length === 0) {
    throw new UserError(`${where}: "messages" must be a non-empty array`);
  }
  const messages: ChatMessage[] = msgs.map((m, i) => {
    if (typeof m !== "object" || m === null) {
      throw new UserError(`${where}: messages[${i}] must be an object`);
    }
    const { role, content } = m as { role?: unknown; content?: unknown };
    if (typeof role !== "string" || !ROLES.includes(role)) {
      throw new UserError(
        `${where}: messages[${i}].role must be one of ${ROLES.join(", ")}, got ${
          JSON.stringify(role)
        }`,
      );
    }
    if (typeof content !== "string") {
      throw new UserError(`${where}: messages[${i}].content must be a string`);
    }
    return { role: role as ChatRole, content };
  });
  if (!messages.some((m) => m.role === "assistant")) {
    throw new UserError(`${where}: no assistant message (nothing to train on)`);
  }
  return { messages };
}

/** Parses JSONL text of chat examples (blank lines skipped); `source` names the file. */
export function parseChatJsonl(text: string, source: string): ChatExample[] {
  const out: ChatExample[] = [];
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // a UTF-8 byte order mark
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    const where = `${source}:${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      throw new UserError(`${where}: invalid JSON (${(e as Error).message})`);
    }
    out.push(parseChatExample(value, where));
  });
  if (out.length === 0) throw new UserError(`${source}: no examples`);
  return out;
}

/** A provider over a fixed list of examples. */
export function listDataset(examples: ChatExample[], description: string): DatasetProvider {
  return { description, size: examples.length, example: (i) => examples[i % examples.length] };
}

/** Loads a JSONL chat dataset file. */
export async function loadChatJsonl(path: string): Promise<DatasetProvider> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new UserError(`${path}: cannot read the dataset (${(e as Error).message})`);
  }
  return listDataset(parseChatJsonl(text, path), path);
}

/** The part of a tokenizer that chat tokenization needs. */
export interface ChatEncoder {
  encodeChat(messages: ChatMessage[], opts: { addGenerationPrompt: boolean }): number[];
}

/**
 * Tokenizes a conversation with the model's chat template and marks the tokens of every
 * assistant turn (including the template's end-of-turn token) as scored. Each assistant turn's
 * span is found by rendering the conversation up to it with a generation prompt and up to its
 * end; the template must be prefix-stable (Llama 3's is), which is checked.
 */
export function tokenizeChat(
  tok: ChatEncoder,
  messages: ChatMessage[],
  where = "example",
): { tokens: number[]; scored: boolean[] } {
  const tokens = tok.encodeChat(messages, { addGenerationPrompt: false });
  const scored = tokens.map(() => false);
  const isPrefix = (p: number[]) => p.length <= tokens.length && p.every((t, i) => tokens[i] === t);
  messages.forEach((m, i) => {
    if (m.role !== "assistant") return;
    const before = tok.encodeChat(messages.slice(0, i), { addGenerationPrompt: true });
    const through = tok.encodeChat(messages.slice(0, i + 1), { addGenerationPrompt: false });
    if (!isPrefix(before) || !isPrefix(through) || through.length < before.length) {
      throw new Error(
        `${where}: the chat template is not prefix-stable around message ${i}; ` +
          `cannot tell which tokens are the assistant's`,
      );
    }
    for (let t = before.length; t < through.length; t++) scored[t] = true;
  });
  return { tokens, scored };
}

/** splitmix32 finalizer: a strong 32-bit integer hash. */
function mix32(x: number): number {
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x21f0aaad) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x735a2d97) >>> 0;
  return (x ^ (x >>> 15)) >>> 0;
}

/**
 * The order in which a run reads its dataset: position p (0, 1, 2, ...) maps to an example
 * index. Fixed-size datasets are read in epochs, each a fresh Fisher-Yates permutation keyed by
 * (seed, epoch) when shuffling; generators are read in index order. The order is a pure function
 * of (seed, position), so the data position is the whole RNG state a resumed run needs.
 */
export class DataOrder {
  readonly size: number | null;
  readonly seed: number;
  readonly shuffle: boolean;
  #epoch = -1;
  #perm: Uint32Array | null = null;

  constructor(size: number | null, seed: number, shuffle: boolean) {
    if (size !== null && !(Number.isInteger(size) && size > 0)) {
      throw new Error(`DataOrder: dataset size must be a positive integer, got ${size}`);
    }
    this.size = size;
    this.seed = seed >>> 0;
    this.shuffle = shuffle;
  }

  /** Example index read at `position`. */
  indexAt(position: number): number {
    if (this.size === null) return position;
    const epoch = Math.floor(position / this.size), i = position % this.size;
    if (!this.shuffle) return i;
    if (epoch !== this.#epoch) {
      const n = this.size, perm = new Uint32Array(n);
      for (let k = 0; k < n; k++) perm[k] = k;
      let state = mix32(this.seed ^ mix32(epoch + 0x9e3779b9));
      for (let k = n - 1; k > 0; k--) {
        state = mix32((state + 0x9e3779b9) >>> 0);
        const j = state % (k + 1); // modulo bias < k/2^32: irrelevant for an example order
        const t = perm[k];
        perm[k] = perm[j];
        perm[j] = t;
      }
      this.#epoch = epoch;
      this.#perm = perm;
    }
    return this.#perm![i];
  }
}
