/**
 * Manifest resolution: read `experiments/<name>.jsonc`, follow `extends` (deep merge), apply
 * `--set` overrides, validate against the base fields and the kind's schema, fill defaults.
 *
 * Manifest shape (kind parameters sit at the top level next to the base fields):
 * ```jsonc
 * { "extends": "other-experiment",   // optional: a name in experiments/ or a path to a .jsonc
 *   "kind": "gpu-probe",              // which experiment kind runs it (`deno task list`)
 *   "description": "one line",
 *   "seed": 0,                         // default 0
 *   ...the kind's own parameters }
 * ```
 *
 * @module
 */
import { basename, dirname, isAbsolute, relative, resolve } from "node:path";
import { z } from "zod";
import { ManifestError } from "./errors.ts";
import { parseJsonc } from "./jsonc.ts";
import { deepMerge } from "./merge.ts";
import { isPlainObject } from "../util/plain_object.ts";
import { applySet, checkSetPath, parseSet, type SetOverride } from "./overrides.ts";
import { childSchema, keysOf } from "./schema_keys.ts";
import { nearestKey } from "./suggest.ts";

/** What the loader needs to know about an experiment kind. */
export interface KindSchema {
  kind: string;
  /** The kind's own parameters (strict objects, defaults filled). */
  schema: z.ZodType;
}

/** Fields every manifest has, whatever its kind. */
export const BASE_SCHEMA = z.strictObject({
  kind: z.string().min(1),
  description: z.string().min(1).regex(/^[^\n]*$/, "must be one line"),
  seed: z.number().int().min(0).max(2 ** 32 - 1).default(0),
});
const BASE_KEYS = Object.keys(BASE_SCHEMA.shape);

/** A fully resolved manifest. */
export interface ResolvedManifest {
  /** Experiment name: the manifest's file name without `.jsonc`. */
  name: string;
  /** Absolute path of the manifest named on the command line. */
  file: string;
  /** Absolute paths: the manifest, then what it extends, and so on. */
  chain: string[];
  /** The overrides applied, in order. */
  sets: SetOverride[];
  kind: string;
  description: string;
  seed: number;
  /** The kind's parameters, defaults filled. */
  params: Record<string, unknown>;
  /** `{kind, description, seed, ...params}`: what is hashed and stored as manifest.json. */
  resolved: Record<string, unknown>;
}

/** Options for {@link loadManifest}. */
export interface LoadOptions {
  /** Where experiment names are looked up (`<dir>/<name>.jsonc`). */
  experimentsDir: string;
  /** The registered kinds. */
  kinds: readonly KindSchema[];
  /** `--set` arguments, as typed. */
  sets?: readonly string[];
}

/** Shows a path relative to the working directory when that is shorter. */
export function displayPath(p: string): string {
  const r = relative(Deno.cwd(), p);
  return r.startsWith("..") || isAbsolute(r) ? p : r;
}

/** True when `ref` is a file path rather than an experiment name. */
function isPathRef(ref: string): boolean {
  return ref.includes("/") || ref.includes("\\") || /\.jsonc?$/.test(ref);
}

/**
 * Resolves an experiment name or path to an absolute file path. Names are looked up in
 * `experimentsDir`; paths are taken relative to `baseDir`.
 */
export function manifestPath(ref: string, experimentsDir: string, baseDir = Deno.cwd()): string {
  return isPathRef(ref) ? resolve(baseDir, ref) : resolve(experimentsDir, `${ref}.jsonc`);
}

function readManifestFile(file: string, from: string | null): Record<string, unknown> {
  let text: string;
  try {
    text = Deno.readTextFileSync(file);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message;
    const by = from ? ` (named by "extends" in ${displayPath(from)})` : "";
    throw new ManifestError(
      displayPath(file),
      `cannot read the manifest: ${why}${by}; \`deno task list\` shows the experiments`,
    );
  }
  const value = parseJsonc(text, displayPath(file));
  if (!isPlainObject(value)) {
    throw new ManifestError(displayPath(file), "a manifest must be a JSON object");
  }
  return value;
}

/** Reads a manifest and everything it extends, merged (extends removed). */
function readWithExtends(
  file: string,
  experimentsDir: string,
  chain: string[],
): Record<string, unknown> {
  if (chain.includes(file)) {
    const loop = [...chain.slice(chain.indexOf(file)), file].map(displayPath).join(" -> ");
    throw new ManifestError(displayPath(chain[0]), `"extends" forms a cycle: ${loop}`);
  }
  const raw = readManifestFile(file, chain.at(-1) ?? null);
  chain.push(file);
  const { extends: parentRef, ...own } = raw;
  if (parentRef === undefined) return own;
  if (typeof parentRef !== "string" || parentRef === "") {
    throw new ManifestError(
      displayPath(file),
      `"extends" must be an experiment name or a path to a .jsonc file, got ${
        JSON.stringify(parentRef)
      }`,
    );
  }
  const parentFile = manifestPath(parentRef, experimentsDir, dirname(file));
  const parent = readWithExtends(parentFile, experimentsDir, chain);
  return deepMerge(parent, own) as Record<string, unknown>;
}

function pathText(path: readonly PropertyKey[]): string {
  let s = "";
  for (const p of path) s += typeof p === "number" ? `[${p}]` : s ? `.${String(p)}` : String(p);
  return s;
}

function describeValue(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 40 ? s.slice(0, 37) + "..." : s;
}

function valueAt(obj: unknown, path: readonly PropertyKey[]): unknown {
  let v = obj;
  for (const p of path) v = isPlainObject(v) || Array.isArray(v) ? (v as never)[p] : undefined;
  return v;
}

/** Turns zod issues into one message naming each bad key path. */
function formatIssues(
  issues: readonly z.core.$ZodIssue[],
  raw: unknown,
  validKeysAt: (path: readonly PropertyKey[]) => string[],
): string {
  const lines: string[] = [];
  for (const issue of issues) {
    if (issue.code === "unrecognized_keys") {
      const valid = validKeysAt(issue.path);
      for (const key of issue.keys) {
        const full = pathText([...issue.path, key]);
        const near = nearestKey(key, valid);
        const parent = pathText(issue.path);
        const hint = near ? ` (did you mean "${parent ? parent + "." : ""}${near}"?)` : "";
        lines.push(`unknown key "${full}"${hint}`);
      }
    } else if (issue.code === "invalid_type") {
      const got = valueAt(raw, issue.path);
      const where = pathText(issue.path) || "the manifest";
      lines.push(
        got === undefined
          ? `"${where}" is required (${issue.expected})`
          : `"${where}": expected ${issue.expected}, got ${describeValue(got)}`,
      );
    } else {
      lines.push(`"${pathText(issue.path) || "the manifest"}": ${issue.message}`);
    }
  }
  return lines.join("; ");
}

/**
 * Loads and resolves the manifest `ref` (an experiment name or a path). Throws
 * {@link ManifestError} naming the file and key for every problem.
 */
export function loadManifest(ref: string, opts: LoadOptions): ResolvedManifest {
  const file = manifestPath(ref, opts.experimentsDir);
  const name = basename(file).replace(/\.jsonc?$/, "");
  const shown = displayPath(file);
  if (!/^[A-Za-z0-9._-]+$/.test(name)) {
    throw new ManifestError(shown, `the experiment name "${name}" may only use A-Z a-z 0-9 . _ -`);
  }
  const chain: string[] = [];
  const raw = readWithExtends(file, opts.experimentsDir, chain);
  const sets = (opts.sets ?? []).map(parseSet);
  for (const s of sets) applySet(raw, s);

  const kindName = raw.kind;
  if (typeof kindName !== "string") {
    throw new ManifestError(
      shown,
      `"kind" is ${
        kindName === undefined ? "missing" : `not a string (${describeValue(kindName)})`
      }; ` +
        `set it to one of: ${opts.kinds.map((k) => k.kind).join(", ")}`,
    );
  }
  const kind = opts.kinds.find((k) => k.kind === kindName);
  if (!kind) {
    // Only suggest a kind that looks like a misspelling, not any kind at all.
    const near = nearestKey(
      kindName,
      opts.kinds.map((k) => k.kind),
      Math.max(2, kindName.length / 3),
    );
    throw new ManifestError(
      shown,
      `unknown kind "${kindName}"${near ? ` (did you mean "${near}"?)` : ""}; known kinds: ${
        opts.kinds.map((k) => k.kind).join(", ")
      }`,
    );
  }
  const kindKeys = keysOf(kind.schema);
  const rootKeys = [...BASE_KEYS, ...(kindKeys.kind === "object" ? kindKeys.keys : [])];
  const childOf = (key: string) =>
    BASE_KEYS.includes(key) ? childSchema(BASE_SCHEMA, key) : childSchema(kind.schema, key);
  for (const s of sets) checkSetPath(s, rootKeys, childOf);

  const baseRaw: Record<string, unknown> = {};
  const paramsRaw: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) (BASE_KEYS.includes(k) ? baseRaw : paramsRaw)[k] = v;
  const validKeysAt = (path: readonly PropertyKey[]): string[] => {
    if (path.length === 0) return rootKeys;
    let s: z.ZodType | null = kind.schema;
    for (const p of path) s = s && typeof p === "string" ? childSchema(s, p) : null;
    const at = s ? keysOf(s) : null;
    return at?.kind === "object" ? at.keys : [];
  };
  const base = BASE_SCHEMA.safeParse(baseRaw);
  const params = kind.schema.safeParse(paramsRaw);
  const issues = [...(base.error?.issues ?? []), ...(params.error?.issues ?? [])];
  // Keys unknown to both schemas surface as an unrecognized key of the kind's schema at the root.
  if (issues.length > 0 || !base.success || !params.success) {
    const where = sets.length
      ? `${shown} (with ${sets.map((s) => `--set ${s.text}`).join(" ")})`
      : shown;
    throw new ManifestError(where, formatIssues(issues, raw, validKeysAt));
  }
  if (!isPlainObject(params.data)) {
    throw new Error(
      `kind ${kind.kind}: its schema must produce an object, got ${typeof params.data}`,
    );
  }
  for (const k of BASE_KEYS) {
    if (k in params.data) {
      throw new Error(`kind ${kind.kind}: its schema redefines the base key "${k}"`);
    }
  }
  return {
    name,
    file,
    chain,
    sets,
    kind: base.data.kind,
    description: base.data.description,
    seed: base.data.seed,
    params: params.data,
    resolved: { ...base.data, ...params.data },
  };
}
