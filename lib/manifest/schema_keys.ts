/**
 * Looks inside zod schemas to find which keys are valid at a path: used to reject `--set` paths
 * that do not exist and to suggest the nearest valid key for a misspelt one.
 *
 * @module
 */
import type { z } from "zod";

/** What a schema accepts at some path. */
export type KeysAt =
  | { kind: "object"; keys: string[] } // a fixed set of keys
  | { kind: "open" } // any key (records, unknown, unions we cannot see through)
  | { kind: "leaf"; type: string }; // a scalar or array: no keys below it

interface Def {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  getter?: () => z.ZodType;
}

function defOf(s: z.ZodType): Def {
  return (s as unknown as { _zod: { def: Def } })._zod.def;
}

/** Strips wrappers (default, optional, nullable, prefault, readonly, catch, pipe, lazy). */
export function unwrapSchema(s: z.ZodType): z.ZodType {
  for (let i = 0; i < 32; i++) {
    const d = defOf(s);
    if (d.innerType) s = d.innerType;
    else if (d.type === "pipe" && d.in) s = d.in;
    else if (d.type === "lazy" && d.getter) s = d.getter();
    else return s;
  }
  return s;
}

/** The keys a schema accepts directly (not below). */
export function keysOf(schema: z.ZodType): KeysAt {
  const s = unwrapSchema(schema);
  const d = defOf(s);
  if (d.type === "object") return { kind: "object", keys: Object.keys(d.shape ?? {}) };
  if (["record", "unknown", "any", "union", "intersection", "map"].includes(d.type)) {
    return { kind: "open" };
  }
  return { kind: "leaf", type: d.type };
}

/** The schema of the child `key` of an object schema, or null when the key is not declared. */
export function childSchema(schema: z.ZodType, key: string): z.ZodType | null {
  const d = defOf(unwrapSchema(schema));
  if (d.type !== "object") return null;
  return d.shape?.[key] ?? null;
}
