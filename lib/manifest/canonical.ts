/**
 * Canonical JSON: object keys sorted at every level, so equal values give equal bytes (and equal
 * hashes) whatever order they were written in.
 *
 * @module
 */

function sortKeys(value: unknown, path: string): unknown {
  if (Array.isArray(value)) return value.map((v, i) => sortKeys(v, `${path}[${i}]`));
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[k];
      if (v !== undefined) out[k] = sortKeys(v, path ? `${path}.${k}` : k);
    }
    return out;
  }
  if (typeof value === "number" && !Number.isFinite(value)) {
    throw new Error(`canonical JSON: ${path || "value"} is ${value}, which JSON cannot hold`);
  }
  if (typeof value === "bigint" || typeof value === "function" || typeof value === "symbol") {
    throw new Error(`canonical JSON: ${path || "value"} is a ${typeof value}`);
  }
  return value;
}

/** Canonical JSON text of `value` (sorted keys; `indent` spaces, default compact). */
export function canonicalJson(value: unknown, indent = 0): string {
  return JSON.stringify(sortKeys(value, ""), null, indent || undefined);
}
