/**
 * `--set a.b.c=value` overrides: parsing the argument, typing the value, checking the path
 * against the schema and applying it to a raw manifest.
 *
 * @module
 */
import type { z } from "zod";
import { ManifestError } from "./errors.ts";
import { nonFinitePath } from "./jsonc.ts";
import { isPlainObject } from "../util/plain_object.ts";
import { childSchema, keysOf } from "./schema_keys.ts";
import { nearestKey } from "./suggest.ts";

/** One parsed `--set` argument. */
export interface SetOverride {
  /** The argument as given, for provenance and error messages. */
  text: string;
  path: string[];
  value: unknown;
}

const JSON_NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;

/**
 * Types a value the way a user means it: numbers, `true`/`false`, `null`, JSON arrays, objects
 * and quoted strings parse as JSON; anything else is the string itself.
 */
export function parseSetValue(raw: string, text = raw): unknown {
  const t = raw.trim();
  if (t === "true") return true;
  if (t === "false") return false;
  if (t === "null") return null;
  const outOfRange = () =>
    new ManifestError(
      "--set",
      `${text}: the number is out of range (a finite double is at most about 1.8e308)`,
    );
  if (JSON_NUMBER.test(t)) {
    const x = Number(t);
    if (!Number.isFinite(x)) throw outOfRange();
    return x;
  }
  if (t.startsWith("[") || t.startsWith("{") || t.startsWith('"')) {
    let value: unknown;
    try {
      value = JSON.parse(t);
    } catch (e) {
      throw new ManifestError(
        "--set",
        `${text}: the value looks like JSON but is not valid JSON (${(e as Error).message}); ` +
          `quote it for the shell, e.g. --set 'key=[1,2]'`,
      );
    }
    if (nonFinitePath(value, [])) throw outOfRange();
    return value;
  }
  return raw;
}

/** Parses one `--set` argument, `a.b.c=value`. */
export function parseSet(text: string): SetOverride {
  const eq = text.indexOf("=");
  if (eq < 0) {
    throw new ManifestError("--set", `"${text}" has no "="; write --set path.to.key=value`);
  }
  const pathText = text.slice(0, eq).trim();
  const path = pathText.split(".");
  if (pathText === "" || path.some((p) => p === "")) {
    throw new ManifestError(
      "--set",
      `"${text}" has an empty key in its path; write --set path.to.key=value`,
    );
  }
  return { text, path, value: parseSetValue(text.slice(eq + 1), text) };
}

/**
 * Checks that `set.path` names a key the schema declares. `rootKeys` are the valid top-level keys
 * and `childOf(key)` gives the schema below each of them.
 */
export function checkSetPath(
  set: SetOverride,
  rootKeys: readonly string[],
  childOf: (key: string) => z.ZodType | null,
): void {
  const [head, ...rest] = set.path;
  if (!rootKeys.includes(head)) throw unknownKey(set, head, rootKeys);
  let schema = childOf(head);
  for (let i = 0; i < rest.length && schema; i++) {
    const key = rest[i];
    const at = keysOf(schema);
    const parent = set.path.slice(0, i + 1).join(".");
    if (at.kind === "open") return;
    if (at.kind === "leaf") {
      if ((at.type === "array" || at.type === "tuple") && /^\d+$/.test(key)) return; // element checked by the schema
      throw new ManifestError(
        "--set",
        `${set.text}: "${parent}" is a ${at.type}, it has no key "${key}"`,
      );
    }
    if (!at.keys.includes(key)) throw unknownKey(set, set.path.slice(0, i + 2).join("."), at.keys);
    schema = childSchema(schema, key);
  }
}

function unknownKey(set: SetOverride, full: string, valid: readonly string[]): ManifestError {
  const last = full.split(".").pop()!;
  const near = nearestKey(last, valid);
  const prefix = full.slice(0, full.length - last.length);
  const hint = near ? ` (did you mean "${prefix}${near}"?)` : "";
  return new ManifestError("--set", `${set.text}: unknown key "${full}"${hint}`);
}

/** Applies an override to a raw manifest object in place, creating missing objects on the way. */
export function applySet(raw: Record<string, unknown>, set: SetOverride): void {
  let node: unknown = raw;
  for (let i = 0; i < set.path.length; i++) {
    const key = set.path[i];
    const last = i === set.path.length - 1;
    const where = set.path.slice(0, i).join(".") || "the manifest";
    if (Array.isArray(node)) {
      const idx = Number(key);
      if (!/^\d+$/.test(key) || idx >= node.length) {
        throw new ManifestError(
          "--set",
          `${set.text}: "${where}" is an array of ${node.length}; "${key}" is not an index in it`,
        );
      }
      if (last) node[idx] = set.value;
      else node = node[idx] ??= {};
    } else if (isPlainObject(node)) {
      if (last) node[key] = set.value;
      else {
        if (node[key] === undefined || node[key] === null) node[key] = {};
        node = node[key];
      }
    } else {
      throw new ManifestError(
        "--set",
        `${set.text}: "${where}" is ${JSON.stringify(node)}, not an object`,
      );
    }
  }
}
