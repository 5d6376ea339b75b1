/**
 * Deep merge used by `extends`: objects merge key by key, arrays and scalars replace.
 *
 * @module
 */

/** True for plain JSON objects (not arrays, not null). */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Returns `base` overlaid with `over` (neither is modified). */
export function deepMerge(base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return structuredClone(over);
  const out: Record<string, unknown> = structuredClone(base);
  for (const [k, v] of Object.entries(over)) {
    out[k] = k in out ? deepMerge(out[k], v) : structuredClone(v);
  }
  return out;
}
