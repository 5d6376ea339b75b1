/**
 * Where two resolved manifests differ, as key paths a person can read ("optimizer.lr, seed").
 *
 * @module
 */
import { canonicalJson } from "./canonical.ts";

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** The dot paths whose values differ (descending into objects on both sides), sorted. */
export function changedKeys(a: unknown, b: unknown, prefix = ""): string[] {
  if (!isObj(a) || !isObj(b)) return canonicalJson(a) === canonicalJson(b) ? [] : [prefix || "."];
  const out: string[] = [];
  for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    const p = prefix ? `${prefix}.${k}` : k;
    if (canonicalJson(a[k] ?? null) === canonicalJson(b[k] ?? null)) continue;
    if (isObj(a[k]) && isObj(b[k])) out.push(...changedKeys(a[k], b[k], p));
    else out.push(p);
  }
  return out;
}
