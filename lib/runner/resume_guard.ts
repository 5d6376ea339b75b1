/**
 * `--resume` only continues the run it was asked for. The run id hashes the resolved manifest,
 * the inputs and the code, so after an edit the same command names a new, empty bundle; this
 * module finds the unfinished bundle the user meant and refuses, saying what changed, when its
 * manifest, inputs or code differ. A changed code version may be accepted explicitly
 * (`--allow-changed-code`); the resumed bundle then keeps its run id and records the change.
 *
 * @module
 */
import { UserError } from "../util/user_error.ts";
import { join } from "node:path";
import { canonicalJson } from "../manifest/canonical.ts";
import { displayPath } from "../manifest/load.ts";
import { STATUS_SCHEMA } from "../bundle/format.ts";
import { tryReadJson } from "../util/json_file.ts";

/** A refusal to resume (printed without a stack, like the runner's other setup errors). */
export class ResumeRefusedError extends UserError {
  override name = "ResumeRefusedError";
}

/** The bundle a `--resume` continues. */
export interface ResumeTarget {
  dir: string;
  runId: string;
  /** Set when the bundle was written by other code and `allowChangedCode` accepted it. */
  changedCode: { from: string; to: string } | null;
}

/** What {@link findResumeTarget} needs to know about the run being asked for. */
export interface ResumeRequest {
  /** The resolved manifest (`{kind, description, seed, ...params}`). */
  resolved: Record<string, unknown>;
  inputs: Record<string, string>;
  code: string;
  runId: string;
  /** The bundle directory this manifest, inputs and code name. */
  dir: string;
  /** True when the directory was given (`--out`); else siblings of `dir` are searched too. */
  explicitDir: boolean;
  allowChangedCode: boolean;
}

interface Found {
  dir: string;
  runId: string;
  status: string;
  updatedAt: string;
  manifest: unknown;
  inputs: unknown;
  code: unknown;
}

async function readBundle(dir: string): Promise<Found | null> {
  const st = STATUS_SCHEMA.safeParse(await tryReadJson(join(dir, "status.json")));
  if (!st.success) return null;
  const prov = await tryReadJson(join(dir, "provenance.json")) as
    | { codeVersion?: unknown; inputs?: unknown }
    | undefined;
  return {
    dir,
    runId: st.data.runId,
    status: st.data.status,
    updatedAt: st.data.updatedAt,
    manifest: await tryReadJson(join(dir, "manifest.json")),
    inputs: prov?.inputs,
    code: prov?.codeVersion,
  };
}

/** Top-level keys (dot paths one level into objects) whose values differ. */
function changedKeys(a: unknown, b: unknown, prefix = ""): string[] {
  const isObj = (v: unknown): v is Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v);
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

/** Why `found` is not the requested run: manifest keys, inputs, code (empty: it is the same). */
function differences(found: Found, req: ResumeRequest): { what: string[]; codeOnly: boolean } {
  const what: string[] = [];
  const keys = changedKeys(found.manifest ?? null, req.resolved);
  if (keys.length) what.push(`the resolved manifest (${keys.join(", ")})`);
  const inputs = changedKeys(found.inputs ?? null, req.inputs);
  if (inputs.length) what.push(`the inputs (${inputs.join(", ")})`);
  const codeChanged = found.code !== req.code;
  if (codeChanged) {
    what.push(
      `the code version (${String(found.code).slice(0, 12)} then, ${req.code.slice(0, 12)} now)`,
    );
  }
  return { what, codeOnly: codeChanged && what.length === 1 };
}

function accept(found: Found, req: ResumeRequest, why: string): ResumeTarget {
  const d = differences(found, req);
  if (d.what.length === 0) return { dir: found.dir, runId: found.runId, changedCode: null };
  const shown = displayPath(found.dir);
  if (d.codeOnly && req.allowChangedCode) {
    return {
      dir: found.dir,
      runId: found.runId,
      changedCode: { from: String(found.code), to: req.code },
    };
  }
  throw new ResumeRefusedError(
    `cannot resume ${shown} (${why}, status ${found.status}): ${d.what.join("; ")} changed ` +
      `since it started, so the resumed run would not be the run it claims to be. ` +
      (d.codeOnly
        ? "Pass --allow-changed-code to continue it anyway (the bundle records it), "
        : "") +
      `run without --resume to start a new run, or pass --force to start it over in place`,
  );
}

/**
 * The bundle `--resume` should continue: `req.dir` when it holds this very run (or nothing and
 * no unfinished sibling needs it); an unfinished bundle of the same experiment written by other
 * code when `allowChangedCode`. Throws {@link ResumeRefusedError} naming what changed otherwise.
 */
export async function findResumeTarget(req: ResumeRequest): Promise<ResumeTarget> {
  const here = await readBundle(req.dir);
  if (here) {
    if (here.runId === req.runId) return { dir: req.dir, runId: req.runId, changedCode: null };
    return accept(here, req, "the directory given with --out");
  }
  if (req.explicitDir) return { dir: req.dir, runId: req.runId, changedCode: null };
  // Unfinished siblings in results/<experiment>/, the most recently updated first.
  const parent = join(req.dir, "..");
  const unfinished: Found[] = [];
  try {
    for await (const e of Deno.readDir(parent)) {
      if (!e.isDirectory || e.name.includes("-repro-")) continue;
      const f = await readBundle(join(parent, e.name));
      if (f && f.status !== "completed") unfinished.push(f);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (unfinished.length === 0) return { dir: req.dir, runId: req.runId, changedCode: null };
  unfinished.sort((a, b) => (a.updatedAt < b.updatedAt ? 1 : a.updatedAt > b.updatedAt ? -1 : 0));
  const sameRun = unfinished.filter((f) => differences(f, req).codeOnly);
  return accept(sameRun[0] ?? unfinished[0], req, "the latest unfinished run of this experiment");
}
