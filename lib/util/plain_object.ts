/**
 * The one plain-object check: a non-null, non-array object (what a parsed JSON object is).
 *
 * @module
 */

/** True when `v` is a non-null object that is not an array. */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
