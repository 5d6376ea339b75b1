/**
 * A disk cache of a model's replies to an eval set, so repeated evaluations against the same
 * base model reuse its outputs instead of generating them again.
 *
 * The key hashes everything the replies depend on: the model (a hash the caller supplies, e.g.
 * of its checkpoint directory), the eval set, the exact prompt token ids (so a changed chat
 * template or tokenizer misses), and the sampling parameters. Replies do not depend on the batch
 * size (each conversation samples with its own RNG row id), so it is not part of the key.
 * Entries are written atomically; a file that exists under a key but does not hold that key's
 * replies is an error, never silently used.
 *
 * @module
 */
import { UserError } from "../util/user_error.ts";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { atomicWriteFile } from "../util/atomic_write.ts";
import type { Replies } from "../model/chat_replies.ts";

/** What the cached replies depend on. */
export interface ReplyCacheKeyParts {
  modelHash: string;
  evalSetHash: string;
  /** The prompts as token ids, in eval-set order. */
  prompts: readonly number[][];
  temperature: number;
  topP: number;
  maxNewTokens: number;
  seed: number;
  stream: number;
}

/** The hex SHA-256 key of one set of replies. */
export function replyCacheKey(p: ReplyCacheKeyParts): string {
  const promptHash = createHash("sha256");
  for (const ids of p.prompts) promptHash.update(ids.join(",") + "\n");
  const parts = {
    modelHash: p.modelHash,
    evalSetHash: p.evalSetHash,
    promptHash: promptHash.digest("hex"),
    temperature: p.temperature,
    topP: p.topP,
    maxNewTokens: p.maxNewTokens,
    seed: p.seed,
    stream: p.stream,
  };
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex");
}

/** The file of a key inside the cache directory. */
export function replyCachePath(dir: string, key: string): string {
  return join(dir, `replies-${key.slice(0, 32)}.json`);
}

/** Reads cached replies for `key` (null when there are none); checks the entry's shape. */
export async function readCachedReplies(
  dir: string,
  key: string,
  n: number,
): Promise<Replies | null> {
  const path = replyCachePath(dir, key);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new UserError(
      `${path}: not valid JSON (${(e as Error).message}); delete it to regenerate`,
    );
  }
  if (j.key !== key) {
    throw new UserError(`${path}: field "key" is ${JSON.stringify(j.key)}, want ${key}`);
  }
  const r = j.replies as Replies | undefined;
  const fields = ["texts", "tokens", "stopped", "promptTokens"] as const;
  for (const f of fields) {
    if (!r || !Array.isArray(r[f]) || r[f].length !== n) {
      throw new UserError(`${path}: field "replies.${f}" must be a list of ${n} entries`);
    }
  }
  if (!r!.texts.every((t) => typeof t === "string")) {
    throw new UserError(`${path}: field "replies.texts" must hold strings`);
  }
  return r!;
}

/** Stores replies under `key` (atomic write; creates the directory). */
export async function writeCachedReplies(
  dir: string,
  key: string,
  meta: Record<string, unknown>,
  replies: Replies,
): Promise<string> {
  const path = replyCachePath(dir, key);
  await atomicWriteFile(path, JSON.stringify({ key, ...meta, replies }) + "\n");
  return path;
}
