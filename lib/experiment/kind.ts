/**
 * The contract between the runner and an experiment kind: what a kind declares, and the
 * {@link RunContext} it is given to do its work.
 *
 * @module
 */
import type { z } from "zod";
import type { GpuInfo } from "../../gpu/device.ts";

/** Whether a bundle file must be reproduced byte for byte by a rerun. */
export interface WriteOptions {
  /** True: the file may hold no timestamps, durations or host data (metrics, samples). */
  deterministic: boolean;
}

/** Everything a running experiment may use. Files it writes go into its bundle. */
export interface RunContext {
  /** Experiment name (the manifest's file name). */
  readonly experiment: string;
  /** This run's id (16 hex digits). */
  readonly runId: string;
  /** The resolved manifest: `{kind, description, seed, ...params}`, defaults filled. */
  readonly manifest: Readonly<Record<string, unknown>>;
  /** The manifest's seed; derive every random stream from it. */
  readonly seed: number;
  /** Aborted on SIGINT/SIGTERM: check it between steps, flush, and return (or throw). */
  readonly signal: AbortSignal;
  /** Absolute path of the bundle directory. */
  readonly bundleDir: string;
  /** Absolute path of the project root (where deno.json is). */
  readonly projectRoot: string;
  /**
   * True when `--resume` continues an unfinished bundle in place (only for kinds that declare
   * `resumable`); the files already written are still there and still registered.
   */
  readonly resume: boolean;
  /** A message to stderr and to the run-specific log.txt (timestamped there). */
  log(msg: string): void;
  /** Progress of a phase: a bar on a terminal, periodic lines otherwise. */
  progress(label: string, done: number, total: number): void;
  /** Throws an `AbortError` when the run was interrupted (a convenient check between steps). */
  throwIfAborted(): void;
  /** Writes (replaces) a bundle file atomically (temp + fsync + rename). */
  writeFile(relPath: string, data: Uint8Array | string, opts: WriteOptions): Promise<void>;
  /** Writes a bundle file atomically by streaming into it (large checkpoints). */
  writeFileWith(
    relPath: string,
    opts: WriteOptions,
    write: (file: Deno.FsFile) => Promise<void>,
  ): Promise<void>;
  /** Appends one JSON line (metrics.jsonl, samples.jsonl: deterministic; timings.jsonl: not). */
  appendJsonl(relPath: string, value: unknown, opts: WriteOptions): Promise<void>;
  /** Reads a file of this bundle (e.g. on resume). */
  readFile(relPath: string): Promise<Uint8Array>;
  /** Records the WebGPU adapter in provenance.json. */
  recordGpu(info: GpuInfo): void;
  /**
   * Records a bundle this run builds on (e.g. a checkpoint it starts from) in provenance.json.
   * The parent must be a verified, completed bundle; its root hash is recorded.
   */
  recordParent(bundleDir: string): Promise<void>;
  /** Adds a run-specific fact to provenance.json under `extra.<key>`. */
  recordProvenance(key: string, value: unknown): void;
  /**
   * Lists a bundle that another process wrote inside this one (a sweep's member, at `relDir`)
   * by its bundle.json, whose sha256 ties the nested bundle's root hash to this bundle's;
   * `verify` then checks it as a nested bundle. The caller verifies it first.
   */
  adoptBundle(relDir: string): Promise<void>;
}

/** What `exp --dry-run` tells a kind's {@link ExperimentKind.dryRun}. */
export interface DryRunInfo {
  /** Experiment name. */
  experiment: string;
  /**
   * Absolute path of the bundle folder a run would write (computed on demand: it needs the
   * run's inputs, which a plan of memory does not).
   */
  bundleDir(): Promise<string>;
  /** Absolute path of the project root. */
  projectRoot: string;
}

/**
 * An experiment kind. `P` is the type of its parameters (the output of `schema`). Register new
 * kinds in lib/cli/kinds.ts.
 */
export interface ExperimentKind<P = Record<string, unknown>> {
  /** The manifest's `kind` value. */
  readonly kind: string;
  /** One line for `list`. */
  readonly description: string;
  /**
   * The kind's own parameters: a strict zod object (unknown keys rejected), defaults filled.
   * Nested objects with defaults should use `.prefault({})` so their inner defaults apply. The
   * base keys `kind`, `description`, `seed` are reserved.
   */
  readonly schema: z.ZodType<P>;
  /** Files or directories whose sha256 enter the run id and provenance (weights, datasets). */
  inputs?(params: P): string[];
  /** True when `run` can continue an unfinished bundle (`ctx.resume`). */
  readonly resumable?: boolean;
  /**
   * Top-level parameters that say how to run, not what: a worker count, a scheduler's queue and
   * limits. They are left out of the run id, so `--resume` may continue a run with other values
   * (manifest.json records the last ones); every other parameter is part of what a run is.
   */
  readonly executionKeys?: readonly string[];
  /**
   * More for `exp --dry-run` to print after the resolved manifest: an RL run's planned GPU
   * memory, a sweep's members and the scripts it would submit. Nothing is run or written.
   */
  dryRun?(params: P, info: DryRunInfo): Promise<string>;
  /** Runs the experiment. Throwing marks the run failed with the error's message. */
  run(ctx: RunContext, params: P): Promise<void>;
}

/** Types a kind's parameters from its schema and erases them for the registry. */
export function defineKind<S extends z.ZodType<Record<string, unknown>>>(
  k: ExperimentKind<z.output<S>> & { schema: S },
): ExperimentKind {
  return k as unknown as ExperimentKind;
}
