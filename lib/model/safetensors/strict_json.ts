/**
 * Strict JSON: JSON.parse silently keeps the last of duplicate keys, which would let a header or
 * an index hide a tensor. This small parser refuses duplicates and otherwise matches JSON.parse.
 *
 * @module
 */
import { ModelFormatError } from "./format.ts";

/** Parses JSON text, refusing duplicate object keys. `what` names the source in errors. */
export function parseJsonStrict(text: string, what: string): unknown {
  let i = 0;
  const fail = (msg: string): never => {
    throw new ModelFormatError(`${what}: invalid JSON at character ${i}: ${msg}`);
  };
  const ws = () => {
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
  };
  const str = (): string => {
    const start = i;
    i++; // opening quote
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        try {
          return JSON.parse(text.slice(start, i));
        } catch (e) {
          return fail((e as Error).message);
        }
      }
      if (c === 0x5c) i += 2;
      else if (c < 0x20) return fail("control character in string");
      else i++;
    }
    return fail("unterminated string");
  };
  const NUM = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  const value = (depth: number): unknown => {
    if (depth > 64) fail("nesting deeper than 64");
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const obj: Record<string, unknown> = {};
      const seen = new Set<string>();
      ws();
      if (text[i] === "}") {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail("expected a key");
        const key = str();
        if (seen.has(key)) {
          throw new ModelFormatError(`${what}: duplicate key ${JSON.stringify(key)}`);
        }
        seen.add(key);
        ws();
        if (text[i] !== ":") fail("expected ':'");
        i++;
        Object.defineProperty(obj, key, {
          value: value(depth + 1),
          enumerable: true,
          writable: true,
          configurable: true,
        });
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "}") {
          i++;
          return obj;
        } else fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      i++;
      const arr: unknown[] = [];
      ws();
      if (text[i] === "]") {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value(depth + 1));
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "]") {
          i++;
          return arr;
        } else fail("expected ',' or ']'");
      }
    }
    if (c === '"') return str();
    if (text.startsWith("true", i)) return (i += 4, true);
    if (text.startsWith("false", i)) return (i += 5, false);
    if (text.startsWith("null", i)) return (i += 4, null);
    NUM.lastIndex = i;
    const m = NUM.exec(text);
    if (!m) return fail("unexpected token");
    i += m[0].length;
    return Number(m[0]);
  };
  const v = value(0);
  ws();
  if (i !== text.length) fail("trailing characters");
  return v;
}
