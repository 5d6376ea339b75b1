/**
 * The experiment runner: from a resolved manifest to a sealed bundle. It derives the run id,
 * guards existing bundles, records provenance, gives the kind its {@link RunContext}, turns
 * Ctrl-C into an orderly `interrupted` and a thrown error into `failed`.
 *
 * @module
 */
import { projectPath } from "../util/project_path.ts";
import { join, resolve } from "node:path";
import { gpuFaults } from "../../gpu/device.ts";
import { canonicalJson } from "../manifest/canonical.ts";
import { displayPath, type ResolvedManifest } from "../manifest/load.ts";
import {
  BUNDLE_INDEX_SCHEMA,
  type BundleIndex,
  type RunStatus,
  STATUS_SCHEMA,
} from "../bundle/format.ts";
import { codeVersion } from "../bundle/code_version.ts";
import { hashPath } from "../bundle/hash.ts";
import { gitState, hostFacts, lockfileHash } from "../bundle/provenance.ts";
import { runIdOf } from "../bundle/run_id.ts";
import { BundleWriter } from "../bundle/writer.ts";
import type { ExperimentKind, RunContext } from "../experiment/kind.ts";
import { makeRunContext, RESERVED_FILES, RunConsole, type RunProvenance } from "./context.ts";
import { DETERMINISM_CLAIM } from "../bundle/claim.ts";
import { CorruptCheckpointError, prepareResume, resumeHint, type ResumePoint } from "./resume.ts";
import { findResumeTarget } from "./resume_guard.ts";
import { tryReadJson } from "../util/json_file.ts";
import { isEmptyOrMissing } from "../util/fs.ts";
import { collectMissingInputs } from "../util/missing_inputs.ts";
import { UserError } from "../util/user_error.ts";
import { clearBundleDir } from "./clear_bundle.ts";

/** A problem the user can fix (existing bundle, missing input); printed without a stack. */
export class RunSetupError extends UserError {
  override name = "RunSetupError";
}

/** Options for {@link runExperiment}. */
export interface RunOptions {
  manifest: ResolvedManifest;
  kinds: readonly ExperimentKind[];
  /** Project root: code version, git state and lockfile are read here. */
  root: string;
  /** Bundles go to `<resultsDir>/<experiment>/<run-id>/` unless `outDir` is given. */
  resultsDir: string;
  /** Exact bundle directory (`--out`). */
  outDir?: string;
  /** Continue an unfinished bundle (resumable kinds), or accept an already completed one. */
  resume?: boolean;
  /** Replace an existing bundle in the target directory. */
  force?: boolean;
  /** With `resume`: continue a bundle written by another code version (recorded in it). */
  allowChangedCode?: boolean;
  /**
   * Draw the bundle's charts at the end (default true). A sweep's members skip them: they are
   * run-specific PNGs (most of a tiny member's bytes), and `deno task report` draws them any time.
   */
  charts?: boolean;
  /** The command line, for provenance. */
  command?: string[];
  /** Stop signal; by default SIGINT/SIGTERM are caught for the duration of the run. */
  signal?: AbortSignal;
}

/** How a run ended. */
export interface RunOutcome {
  status: Exclude<RunStatus, "running">;
  bundleDir: string;
  runId: string;
  /** Set when status is failed or interrupted. */
  error?: string;
  /** Null when the run was already complete and nothing ran. */
  index: BundleIndex | null;
  /** True when `--resume` found the run already complete. */
  alreadyComplete: boolean;
}

/** Hashes a kind's inputs; a missing one is a clear error. */
async function hashInputs(
  kind: ExperimentKind,
  m: ResolvedManifest,
): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  // Every missing input is named at once (lib/util/missing_inputs.ts), not one per attempt.
  const paths = collectMissingInputs(() => kind.inputs?.(m.params) ?? []);
  for (const p of paths) {
    try {
      out[p] = await hashPath(projectPath(p));
    } catch (e) {
      throw new RunSetupError(
        `${displayPath(m.file)}: input "${p}" cannot be read (${(e as Error).message}); ` +
          `fix the path in the manifest or with --set`,
      );
    }
  }
  return out;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/**
 * What to do with the target directory: start fresh, resume, or stop because the run is
 * already complete. Throws {@link RunSetupError} when the user must choose.
 */
async function prepareDir(
  dir: string,
  kind: ExperimentKind,
  runId: string,
  opts: RunOptions,
): Promise<"fresh" | "resume" | "complete"> {
  if (await isEmptyOrMissing(dir)) return "fresh";
  const shown = displayPath(dir);
  const index = BUNDLE_INDEX_SCHEMA.safeParse(await tryReadJson(join(dir, "bundle.json")));
  const status = STATUS_SCHEMA.safeParse(await tryReadJson(join(dir, "status.json")));
  if (!index.success && !status.success) {
    throw new RunSetupError(
      `${shown} exists and is not a bundle; choose an empty or new directory with --out`,
    );
  }
  const state = status.success ? status.data.status : index.data!.status;
  const oldId = status.success ? status.data.runId : index.data!.runId;
  if (opts.force) {
    await clearBundleDir(dir, shown); // only the earlier run's own files
    return "fresh";
  }
  if (oldId !== runId) {
    throw new RunSetupError(
      `${shown} holds another run (${oldId}, status ${state}); this manifest, its inputs and ` +
        `the current code make run ${runId}; pass --force to replace it or choose another --out`,
    );
  }
  if (state === "completed") {
    if (opts.resume) return "complete";
    throw new RunSetupError(
      `${shown} already holds a completed run of this experiment (same manifest, inputs and ` +
        `code); check it with \`deno task verify ${shown}\`, or pass --force to run it again ` +
        `in place, or --out DIR for a new copy`,
    );
  }
  if (opts.resume) {
    if (!kind.resumable) {
      throw new RunSetupError(
        `${shown} holds an unfinished run (status: ${state}), but kind "${kind.kind}" cannot ` +
          `resume; pass --force to start it over`,
      );
    }
    return "resume";
  }
  throw new RunSetupError(
    `${shown} holds an unfinished run (status: ${state}); pass --force to start it over` +
      (kind.resumable ? " or --resume to continue it" : ""),
  );
}

/**
 * Turns an error that escapes the kind (a rejected promise nobody awaited, an exception thrown in
 * a timer) into the run's failure instead of a crash that leaves the bundle marked running.
 */
function catchEscapes(): { failed: Promise<never>; remove: () => void } {
  let fail!: (e: unknown) => void;
  const failed = new Promise<never>((_, reject) => fail = reject);
  failed.catch(() => {});
  const wrap = (e: unknown, how: string) => {
    const err = e instanceof Error ? e : new Error(String(e));
    return Object.assign(new Error(`${err.message} (${how})`, { cause: err }), {
      stack: err.stack,
    });
  };
  const onRejection = (ev: PromiseRejectionEvent) => {
    ev.preventDefault();
    fail(ev.reason instanceof UserError ? ev.reason : wrap(ev.reason, "an unhandled rejection"));
  };
  const onError = (ev: ErrorEvent) => {
    ev.preventDefault();
    fail(ev.error instanceof UserError ? ev.error : wrap(ev.error ?? ev.message, "uncaught"));
  };
  globalThis.addEventListener("unhandledrejection", onRejection);
  globalThis.addEventListener("error", onError);
  return {
    failed,
    remove: () => {
      globalThis.removeEventListener("unhandledrejection", onRejection);
      globalThis.removeEventListener("error", onError);
    },
  };
}

/**
 * Catches SIGINT, SIGTERM and SIGHUP while a run is in progress: the first aborts (the run stops
 * after its current step), the second calls `onExit` and exits at once.
 */
function installSignals(
  ctl: AbortController,
  say: (msg: string) => void,
  onExit: () => void,
): () => void {
  const handler = () => {
    if (ctl.signal.aborted) {
      say("second interrupt: exiting now; the bundle is marked interrupted");
      try {
        onExit();
      } catch (e) {
        say(`could not mark the bundle interrupted: ${(e as Error).message}`);
      }
      Deno.exit(130);
    }
    say(
      "interrupt: finishing the current step, then marking the run interrupted " +
        "(interrupt again to quit at once)",
    );
    ctl.abort(new DOMException("the run was interrupted", "AbortError"));
  };
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT"]
    : ["SIGINT", "SIGTERM", "SIGHUP"];
  for (const s of signals) Deno.addSignalListener(s, handler);
  return () => {
    for (const s of signals) Deno.removeSignalListener(s, handler);
  };
}

/** Where a run goes and how: its id, its bundle folder, and whether it starts or resumes. */
interface RunTarget {
  kind: ExperimentKind;
  inputs: Record<string, string>;
  code: string;
  runId: string;
  dir: string;
  mode: "fresh" | "resume" | "complete";
  changedCode: { from: string; to: string } | null;
}

/** The resolved manifest without the kind's execution keys: what the run id hashes. */
function identityOf(kind: ExperimentKind, resolved: Record<string, unknown>) {
  const out = { ...resolved };
  for (const k of kind.executionKeys ?? []) delete out[k];
  return out;
}

/** The kind, inputs, code version, run id and bundle folder a manifest names. */
async function identify(opts: TargetOptions) {
  const m = opts.manifest;
  const kind = opts.kinds.find((k) => k.kind === m.kind);
  if (!kind) throw new RunSetupError(`${displayPath(m.file)}: unknown kind "${m.kind}"`);
  const inputs = await hashInputs(kind, m);
  const code = await codeVersion(opts.root);
  const runId = runIdOf(identityOf(kind, m.resolved), inputs, code);
  const dir = resolve(opts.outDir ?? join(opts.resultsDir, m.name, runId));
  return { kind, inputs, code, runId, dir };
}

/** What {@link plannedTarget} needs: the run options that decide where a run goes. */
export type TargetOptions = Pick<
  RunOptions,
  "manifest" | "kinds" | "root" | "resultsDir" | "outDir"
>;

/** The run id and bundle folder a run of this manifest would get (for `exp --dry-run`). */
export async function plannedTarget(opts: TargetOptions): Promise<{ runId: string; dir: string }> {
  const { runId, dir } = await identify(opts);
  return { runId, dir };
}

/** Derives the run id and the bundle folder, and decides what to do with what is there. */
async function resolveTarget(opts: RunOptions): Promise<RunTarget> {
  const m = opts.manifest;
  const id = await identify(opts);
  const { kind, inputs, code } = id;
  let { runId, dir } = id;
  // --resume continues the run it names, or refuses saying what changed (resume_guard.ts).
  let changedCode: { from: string; to: string } | null = null;
  if (opts.resume && !opts.force) {
    ({ dir, runId, changedCode } = await findResumeTarget({
      resolved: identityOf(kind, m.resolved),
      executionKeys: kind.executionKeys ?? [],
      inputs,
      code,
      runId,
      dir,
      explicitDir: opts.outDir !== undefined,
      allowChangedCode: Boolean(opts.allowChangedCode),
    }));
  }
  const mode = await prepareDir(dir, kind, runId, opts);
  return { kind, inputs, code, runId, dir, mode, changedCode };
}

/**
 * Reopens an unfinished bundle to continue it: re-registers the files it wrote (from its sealed
 * index, or from status.json when it was killed before sealing), verifies the latest checkpoint
 * and cuts JSONL files back to it (resume.ts), and drops the stale index. Returns the resume
 * point and notes for the log.
 */
async function reopenBundle(
  bundle: BundleWriter,
  dir: string,
): Promise<{ point: ResumePoint; notes: string[] }> {
  const notes: string[] = [];
  const old = BUNDLE_INDEX_SCHEMA.safeParse(await tryReadJson(join(dir, "bundle.json")));
  const oldStatus = STATUS_SCHEMA.safeParse(await tryReadJson(join(dir, "status.json")));
  const known: [string, boolean][] = old.success
    ? old.data.files.map((f) => [f.path, f.deterministic])
    : Object.entries(oldStatus.success ? oldStatus.data.files ?? {} : {});
  for (const [rel, deterministic] of known) {
    if (RESERVED_FILES.has(rel)) continue;
    // A file removed since (by hand, or lost) is not carried over: registered but absent, it
    // would make the resumed run fail as incomplete. The kind writes it again if it needs it.
    if (!(await isFile(join(dir, rel)))) {
      notes.push(`resume: ${rel} was listed by the unfinished run but is gone; dropped`);
      continue;
    }
    bundle.register(rel, { deterministic });
  }
  let point: ResumePoint;
  try {
    point = await prepareResume(bundle, (msg) => notes.push(msg));
  } catch (e) {
    if (e instanceof CorruptCheckpointError) throw new RunSetupError(e.message);
    throw e;
  }
  await Deno.remove(join(dir, "bundle.json")).catch(() => {});
  return { point, notes };
}

/** The run's provenance record, before the kind adds to it. */
async function startProvenance(opts: RunOptions, t: RunTarget): Promise<RunProvenance> {
  const m = opts.manifest;
  return {
    experiment: m.name,
    runId: t.runId,
    codeVersion: t.code,
    command: opts.command ?? [],
    sets: m.sets.map((s) => s.text),
    manifestChain: m.chain.map(displayPath),
    ...hostFacts(),
    gpu: null,
    git: await gitState(opts.root),
    denoLockSha256: await lockfileHash(opts.root),
    inputs: t.inputs,
    parents: [],
    resumed: t.mode === "resume",
    startedAt: new Date().toISOString(),
    endedAt: null,
    extra: { determinism: DETERMINISM_CLAIM },
  };
}

/**
 * Runs the kind after the run's first writes (`startup`): any error fails the run, however it
 * surfaces (thrown, an unhandled rejection, a throw in a timer, a WebGPU error pending when the
 * kind returns), and an abort interrupts it.
 */
async function runKind(
  t: RunTarget,
  ctx: RunContext,
  params: Record<string, unknown>,
  signal: AbortSignal,
  out: { say: (msg: string) => void; logOnly: (msg: string) => Promise<void> },
  startup: () => Promise<void>,
): Promise<{ status: Exclude<RunStatus, "running">; error?: string }> {
  const escapes = catchEscapes();
  const faultsBefore = new Set(gpuFaults());
  try {
    await startup();
    const running = t.kind.run(ctx, params);
    running.catch(() => {}); // when an escaped error ends the run first, its later end is moot
    await Promise.race([running, escapes.failed]);
    if (signal.aborted) return { status: "interrupted" };
    // WebGPU errors arrive asynchronously: work that failed on the GPU is not a completed run.
    const fault = gpuFaults().find((f) => !faultsBefore.has(f));
    if (fault) throw new Error(fault);
    return { status: "completed" };
  } catch (e) {
    if (signal.aborted) return { status: "interrupted" };
    let error = e instanceof Error ? e.message : String(e);
    // A bad input fails the same way on resume: no hint then.
    const resumeHelps = !(e instanceof UserError) || e.resumeHelps;
    if (t.kind.resumable && resumeHelps) error += `; ${await resumeHint(t.dir)}`;
    const stack = e instanceof Error && e.stack ? e.stack : "";
    // A bug's stack goes to log.txt, where a report of it can quote it.
    if (stack && !(e instanceof UserError)) await out.logOnly(stack).catch(() => {});
    if (Deno.env.get("SELFPLAY_DEBUG") === "1" && stack) out.say(stack);
    return { status: "failed", error };
  } finally {
    escapes.remove();
  }
}

/** Runs one experiment into its bundle. Never throws for the kind's own failures. */
export async function runExperiment(opts: RunOptions): Promise<RunOutcome> {
  const m = opts.manifest;
  const t = await resolveTarget(opts);
  const { runId, dir } = t;
  if (t.mode === "complete") {
    return { status: "completed", bundleDir: dir, runId, index: null, alreadyComplete: true };
  }

  const bundle = new BundleWriter(dir, m.name, runId);
  const reopened = t.mode === "resume" ? await reopenBundle(bundle, dir) : null;
  await Deno.mkdir(dir, { recursive: true });
  const logPath = bundle.register("log.txt", { deterministic: false });
  await bundle.setStatus("running");

  const provenance = await startProvenance(opts, t);
  const writeProvenance = () =>
    bundle.writeFile("provenance.json", JSON.stringify(provenance, null, 2) + "\n", {
      deterministic: false,
    });
  // The run's first writes: run inside runKind, so that their failure marks the run failed.
  const startup = async () => {
    await bundle.writeFile("manifest.json", canonicalJson(m.resolved, 2) + "\n", {
      deterministic: true,
    });
    if (reopened) {
      const record = {
        at: provenance.startedAt,
        fromCheckpoint: reopened.point.checkpoint,
        fromStep: reopened.point.step,
        codeVersion: t.code,
        ...(t.changedCode ? { changedCode: t.changedCode } : {}),
      };
      provenance.extra.resume = record;
      // Appended, so every resume of this bundle stays on record (provenance is rewritten).
      await bundle.appendJsonl("resumes.jsonl", record, { deterministic: false });
    }
    await writeProvenance();
  };

  const out = new RunConsole(logPath);
  const ctl = new AbortController();
  opts.signal?.addEventListener("abort", () => ctl.abort(opts.signal!.reason), { once: true });
  const removeSignals = opts.signal ? () => {} : installSignals(ctl, out.log, () => {
    // A second signal exits at once: no promise would finish, so record it synchronously.
    bundle.setStatusSync(
      "interrupted",
      "interrupted by a second signal before the run could stop; resume it with --resume " +
        "where the kind supports it",
    );
  });
  const ctx = makeRunContext({
    manifest: m,
    runId,
    dir,
    root: opts.root,
    resume: t.mode === "resume",
    bundle,
    provenance,
    console: out,
    signal: ctl.signal,
  });

  out.log(
    `${m.name} (${m.kind}) run ${runId} -> ${displayPath(dir)}${
      t.mode === "resume" ? " (resuming)" : ""
    }`,
  );
  for (const note of reopened?.notes ?? []) out.log(note);
  if (t.changedCode) {
    out.log(
      `warning: continuing a run of code ${t.changedCode.from.slice(0, 12)} with code ` +
        `${t.changedCode.to.slice(0, 12)} (--allow-changed-code; recorded in resumes.jsonl)`,
    );
  }
  let status: Exclude<RunStatus, "running">;
  let error: string | undefined;
  try {
    const logOnly = (msg: string) =>
      bundle.appendText("log.txt", `${new Date().toISOString()} ${msg}\n`, {
        deterministic: false,
      });
    ({ status, error } = await runKind(t, ctx, m.params, ctl.signal, {
      say: out.say,
      logOnly,
    }, startup));
  } finally {
    out.endProgress();
  }
  // The signal handlers stay until the bundle is sealed: a second signal while charts are drawn
  // or files hashed still records the run as interrupted instead of leaving it running.
  try {
    if (status === "interrupted") error = "interrupted by a signal before the run finished";
    // Every bundle gets its own charts. PNG bytes depend on the host's fonts and canvas build,
    // so they are run-specific records, not deterministic outputs.
    if (opts.charts === false) {
      out.log("charts not drawn (--no-charts): `deno task report` on the bundle draws them");
    } else {
      try {
        const { writeBundleCharts } = await import("../report/bundle_charts.ts");
        await writeBundleCharts(
          dir,
          (rel, bytes) => bundle.writeFile(rel, bytes, { deterministic: false }),
        );
      } catch (e) {
        out.log(`charts not drawn: ${(e as Error).message}`);
      }
    }
    let index;
    try {
      out.log(`run ${status}${error ? `: ${error}` : ""}`);
      provenance.endedAt = new Date().toISOString();
      await writeProvenance();
      index = await bundle.seal(status, error);
    } catch (e) {
      // A full or failing disk: say so, never hide the run's own outcome behind it.
      const why = `the bundle could not be sealed (${(e as Error).message})`;
      out.say(`run failed: ${why}`);
      return {
        status: "failed",
        bundleDir: dir,
        runId,
        error: `${error ? `${error}; then ` : ""}${why}`,
        index: null,
        alreadyComplete: false,
      };
    }
    if (index.status !== status) {
      status = index.status;
      error = (await tryReadJson(join(dir, "status.json")) as { error?: string })?.error;
    }
    return { status, bundleDir: dir, runId, error, index, alreadyComplete: false };
  } finally {
    removeSignals();
  }
}
