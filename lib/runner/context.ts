/**
 * What a running kind is given: the {@link RunContext} over the run's bundle writer, its
 * provenance record and its console (stderr, log.txt and the progress bar).
 *
 * @module
 */
import { join, resolve } from "node:path";
import type { GpuInfo } from "../../gpu/device.ts";
import type { Provenance } from "../bundle/provenance.ts";
import { verifyBundle } from "../bundle/verify.ts";
import type { BundleWriter } from "../bundle/writer.ts";
import type { RunContext, WriteOptions } from "../experiment/kind.ts";
import { displayPath, type ResolvedManifest } from "../manifest/load.ts";
import { namedWrite } from "./faults.ts";
import { ProgressReporter } from "./progress.ts";

/** Files the runner owns; kinds may not write them. */
export const RESERVED_FILES: ReadonlySet<string> = new Set([
  "bundle.json",
  "status.json",
  "manifest.json",
  "provenance.json",
]);

/** The provenance record of a run, with the facts kinds add under `extra`. */
export type RunProvenance = Provenance & { extra: Record<string, unknown> };

const enc = new TextEncoder();

/** Messages of a run: to stderr (clearing the progress bar first) and timestamped to log.txt. */
export class RunConsole {
  readonly #logPath: string;
  readonly #progress = new ProgressReporter();

  constructor(logPath: string) {
    this.#logPath = logPath;
  }

  /** To stderr only. */
  say = (msg: string): void => {
    this.#progress.clear();
    Deno.stderr.writeSync(enc.encode(msg + "\n"));
  };

  /** To stderr and to log.txt. */
  log = (msg: string): void => {
    this.say(msg);
    Deno.writeFileSync(this.#logPath, enc.encode(`${new Date().toISOString()} ${msg}\n`), {
      append: true,
    });
  };

  progress(label: string, done: number, total: number): void {
    this.#progress.update(label, done, total);
  }

  /** Ends the progress bar's line (after the kind returns). */
  endProgress(): void {
    this.#progress.clear(true);
  }
}

/** What {@link makeRunContext} builds the context from. */
export interface RunContextParts {
  manifest: ResolvedManifest;
  runId: string;
  dir: string;
  root: string;
  resume: boolean;
  bundle: BundleWriter;
  provenance: RunProvenance;
  console: RunConsole;
  signal: AbortSignal;
}

/** The context a kind runs with; its writes go through the bundle writer, named on failure. */
export function makeRunContext(p: RunContextParts): RunContext {
  const { bundle, provenance } = p;
  const guard = (rel: string) => {
    if (RESERVED_FILES.has(rel)) throw new Error(`${rel} is written by the runner, not by a kind`);
    return rel;
  };
  return {
    experiment: p.manifest.name,
    runId: p.runId,
    manifest: p.manifest.resolved,
    seed: p.manifest.seed,
    signal: p.signal,
    bundleDir: p.dir,
    projectRoot: p.root,
    resume: p.resume,
    log: p.console.log,
    progress: (label, done, total) => p.console.progress(label, done, total),
    throwIfAborted: () => p.signal.throwIfAborted(),
    // A failed write (disk full, permissions) fails the run with a message naming the file.
    writeFile: (rel, data, o: WriteOptions) =>
      namedWrite(guard(rel), () => bundle.writeFile(rel, data, o)),
    writeFileWith: (rel, o, write) =>
      namedWrite(guard(rel), () => bundle.writeFileWith(rel, o, write)),
    appendJsonl: (rel, value, o) => namedWrite(guard(rel), () => bundle.appendJsonl(rel, value, o)),
    readFile: (rel) => Deno.readFile(join(p.dir, guard(rel))),
    recordGpu: (info: GpuInfo) => {
      provenance.gpu = info;
    },
    recordParent: async (parentDir) => {
      const v = await verifyBundle(parentDir);
      if (!v.ok || v.index?.status !== "completed") {
        throw new Error(
          `parent bundle ${displayPath(parentDir)} is not a verified completed bundle: ${
            v.problems[0] ?? `status ${v.index?.status}`
          }`,
        );
      }
      provenance.parents.push({
        path: displayPath(resolve(parentDir)),
        experiment: v.index.experiment,
        runId: v.index.runId,
        rootHash: v.rootHash,
      });
    },
    recordProvenance: (key, value) => {
      provenance.extra[key] = value;
    },
  };
}
