/**
 * `repro`: run a completed bundle's resolved manifest again into a new bundle beside it, compare
 * every deterministic file byte for byte, and record the verdict in the original's
 * reproductions.jsonl.
 *
 * @module
 */
import { isEmptyOrMissing } from "../util/fs.ts";
import { UserError } from "../util/user_error.ts";
import { dirname, join, resolve } from "node:path";
import { codeVersion } from "../bundle/code_version.ts";
import type { BundleIndex } from "../bundle/format.ts";
import { verifyBundle } from "../bundle/verify.ts";
import { canonicalJson } from "../manifest/canonical.ts";
import { displayPath, loadManifest } from "../manifest/load.ts";
import type { ExperimentKind } from "../experiment/kind.ts";
import { runExperiment, type RunOutcome } from "../runner/run.ts";
import { readJsonFile } from "../util/json_file.ts";
import { adapterIdentity } from "../bundle/claim.ts";
import { compareDeterministic, type FileComparison } from "./compare.ts";
import { appendReproduction, type ReproductionRecord } from "../bundle/reproductions.ts";

/** A bundle that cannot be reproduced as asked (printed without a stack). */
export class ReproError extends UserError {
  override name = "ReproError";
}

/** Options for {@link reproduceBundle}. */
export interface ReproOptions {
  /** The completed bundle to reproduce. */
  bundleDir: string;
  kinds: readonly ExperimentKind[];
  /** Project root (its code version is compared with the bundle's). */
  root: string;
  /** Where the new bundle goes; default `<bundle>-repro-<n>` beside it (first free n). */
  outDir?: string;
  /** Warnings (code, adapter or input changes) go here. */
  warn?: (msg: string) => void;
  /** Stop signal passed to the run (default: the runner catches SIGINT/SIGTERM). */
  signal?: AbortSignal;
}

/** What a reproduction found. */
export interface ReproResult {
  /** True when the rerun completed and every deterministic file matched byte for byte. */
  ok: boolean;
  rows: FileComparison[];
  outcome: RunOutcome;
  record: ReproductionRecord;
  warnings: string[];
}

/** A JSON file of the bundle; a missing or broken one is a {@link ReproError} naming it. */
async function readJson(path: string): Promise<Record<string, unknown>> {
  return await readJsonFile(displayPath(path), (m) => new ReproError(m)) as Record<
    string,
    unknown
  >;
}

async function freeReproDir(bundleDir: string): Promise<string> {
  for (let n = 1;; n++) {
    const d = `${bundleDir}-repro-${n}`;
    try {
      await Deno.stat(d);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return d;
      throw e;
    }
  }
}

/** Reruns the bundle and compares; see the module doc. Throws {@link ReproError} up front. */
export async function reproduceBundle(opts: ReproOptions): Promise<ReproResult> {
  const dir = resolve(opts.bundleDir);
  const shown = displayPath(dir);
  const warnings: string[] = [];
  const warn = (msg: string) => {
    warnings.push(msg);
    opts.warn?.(msg);
  };
  const v = await verifyBundle(dir);
  if (!v.ok || !v.index) {
    throw new ReproError(
      `${shown} does not verify, so its claims cannot be checked: ${v.problems.join("; ")}`,
    );
  }
  const original: BundleIndex = v.index;
  if (original.status !== "completed") {
    throw new ReproError(
      `${shown} is a ${original.status} run; only completed bundles make a claim to reproduce`,
    );
  }
  const manifestJson = await readJson(join(dir, "manifest.json"));
  const prov = await readJson(join(dir, "provenance.json"));

  // Resolve manifest.json again through the kind's schema (as `<experiment>.jsonc`).
  const scratch = await Deno.makeTempDir({ prefix: "selfplay-repro-" });
  let manifest;
  try {
    const file = join(scratch, `${original.experiment}.jsonc`);
    await Deno.writeTextFile(file, JSON.stringify(manifestJson));
    manifest = loadManifest(file, { experimentsDir: scratch, kinds: opts.kinds });
  } finally {
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
  if (canonicalJson(manifest.resolved) !== canonicalJson(manifestJson)) {
    warn(
      `the current code resolves ${shown}/manifest.json differently (changed defaults?); ` +
        `the rerun uses the new resolution`,
    );
  }
  const code = await codeVersion(opts.root);
  const sameCode = prov.codeVersion === code;
  if (!sameCode) {
    warn(
      `the code version differs from the bundle's (${String(prov.codeVersion).slice(0, 12)} ` +
        `then, ${code.slice(0, 12)} now): the determinism claim covers the same code only`,
    );
  }

  const outDir = resolve(opts.outDir ?? await freeReproDir(dir));
  if (opts.outDir !== undefined && !(await isEmptyOrMissing(outDir))) {
    // repro never writes over anything (it has no --force): say what to do instead.
    throw new ReproError(
      `--out ${opts.outDir}: ${
        resolve(dir) === outDir ? "that is the bundle being reproduced" : "the folder is not empty"
      }; the rerun needs a new or empty folder: omit --out to use ${
        displayPath(dir)
      }-repro-<n>/ beside the bundle, or give another --out`,
    );
  }
  const outcome = await runExperiment({
    manifest,
    kinds: opts.kinds,
    root: opts.root,
    resultsDir: dirname(dirname(dir)),
    outDir,
    command: ["repro", opts.bundleDir],
    signal: opts.signal,
  });

  let sameAdapter: boolean | null = null;
  if (outcome.index) {
    const now = await readJson(join(outDir, "provenance.json"));
    const a = adapterIdentity(prov.gpu), b = adapterIdentity(now.gpu);
    sameAdapter = a === null && b === null ? null : a === b;
    if (sameAdapter === false) {
      warn(
        `the adapter differs (${a ?? "none"} then, ${b ?? "none"} now): the determinism ` +
          `claim covers the same adapter only`,
      );
    }
    if (canonicalJson(prov.inputs ?? {}) !== canonicalJson(now.inputs ?? {})) {
      warn(`the inputs' hashes differ from the bundle's (provenance.json "inputs")`);
    }
  }
  const rows = outcome.index ? compareDeterministic(original, outcome.index) : [];
  const mismatches = rows.filter((r) => r.verdict !== "match").map((r) => r.path);
  const completed = outcome.status === "completed" && outcome.index !== null;
  const ok = completed && mismatches.length === 0;
  const record: ReproductionRecord = {
    at: new Date().toISOString(),
    verdict: !completed ? "failed" : ok ? "reproduced" : "differs",
    originalRootHash: original.rootHash,
    bundle: displayPath(outDir),
    runId: outcome.runId,
    status: outcome.status,
    rootHash: outcome.index?.rootHash ?? null,
    sameCode,
    sameAdapter,
    compared: rows.length,
    matched: rows.length - mismatches.length,
    mismatches,
    ...(outcome.error ? { error: outcome.error } : {}),
  };
  await appendReproduction(dir, record);
  return { ok, rows, outcome, record, warnings };
}
