/**
 * Deep merge used by `extends`: objects merge key by key, arrays and scalars replace.
 *
 * @module
 */

import { isPlainObject } from "../util/plain_object.ts";

/** Returns `base` overlaid with `over` (neither is modified). */
export function deepMerge(base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return structuredClone(over);
  const out: Record<string, unknown> = structuredClone(base);
  for (const [k, v] of Object.entries(over)) {
    out[k] = k in out ? deepMerge(out[k], v) : structuredClone(v);
  }
  return out;
}
