/**
 * Writes a result bundle: every file goes through here so that it is written atomically,
 * registered as deterministic or run-specific, and hashed into bundle.json when the run ends.
 *
 * @module
 */
import { join } from "node:path";
import { atomicWriteFile, atomicWriteWith, isTempFile } from "../util/atomic_write.ts";
import {
  BUNDLE_FORMAT,
  type BundleFileEntry,
  type BundleIndex,
  checkRelPath,
  type RunStatus,
  serializeIndex,
  type StatusRecord,
} from "./format.ts";
import { hashFile } from "../util/hash_file.ts";
import { rootHashOf } from "./hash.ts";
import { linkOnPath, scanTree } from "./no_links.ts";

/** Whether a file must be reproduced byte for byte by a rerun. */
export interface FileOptions {
  /** True: no timestamps, durations or host data may appear in it. */
  deterministic: boolean;
}

/** Serialises values for JSONL; non-finite numbers become strings so they are not lost as null. */
export function jsonLine(value: unknown): string {
  return JSON.stringify(
    value,
    (_k, v) => typeof v === "number" && !Number.isFinite(v) ? String(v) : v,
  ) +
    "\n";
}

/** A bundle directory being written. */
export class BundleWriter {
  readonly dir: string;
  readonly experiment: string;
  readonly runId: string;
  #files = new Map<string, FileOptions>();
  #status: { status: RunStatus; error?: string } | null = null;
  #statusChain: Promise<void> = Promise.resolve();
  #sealed: BundleIndex | null = null;
  #finalStatusWritten = false;

  constructor(dir: string, experiment: string, runId: string) {
    this.dir = dir;
    this.experiment = experiment;
    this.runId = runId;
  }

  /** Registered files so far, with their determinism. */
  get files(): ReadonlyMap<string, FileOptions> {
    return this.#files;
  }

  /** Absolute path of a bundle file; checks the path and registers it. */
  register(rel: string, opts: FileOptions): string {
    if (this.#sealed) throw new Error(`bundle ${this.dir}: already sealed, cannot add ${rel}`);
    const bad = checkRelPath(rel);
    if (bad) throw new Error(`bundle file "${rel}": the path ${bad}`);
    if (rel === "bundle.json") {
      throw new Error(`bundle file "bundle.json" is written only by seal()`);
    }
    const prev = this.#files.get(rel);
    if (prev && prev.deterministic !== opts.deterministic) {
      throw new Error(
        `bundle file "${rel}" was registered as ${
          prev.deterministic ? "deterministic" : "run-specific"
        }; it cannot change`,
      );
    }
    this.#files.set(rel, { deterministic: opts.deterministic });
    return join(this.dir, rel);
  }

  /** Throws when a folder on the way to `rel`, or `rel` itself, is a link or a special file. */
  async #refuseLinks(rel: string): Promise<void> {
    const bad = await linkOnPath(this.dir, rel);
    if (bad) {
      throw new Error(
        `bundle ${this.dir}: will not write ${rel}: ${bad} (bundles hold only regular files)`,
      );
    }
  }

  /** Writes (replaces) a whole file atomically. */
  async writeFile(rel: string, data: Uint8Array | string, opts: FileOptions): Promise<void> {
    const isNew = !this.#files.has(rel);
    const path = this.register(rel, opts);
    await this.#refuseLinks(rel);
    await atomicWriteFile(path, data);
    if (isNew) await this.#recordRegistry(rel);
  }

  /**
   * Keeps status.json's file list current when a new file appears, so that a run killed
   * without sealing can still be resumed knowing which files are its own.
   */
  async #recordRegistry(rel: string): Promise<void> {
    if (rel !== "status.json" && this.#status) {
      await this.setStatus(this.#status.status, this.#status.error);
    }
  }

  /** Writes a file atomically through a callback that streams into it (large checkpoints). */
  async writeFileWith(
    rel: string,
    opts: FileOptions,
    write: (file: Deno.FsFile) => Promise<void>,
  ): Promise<void> {
    const isNew = !this.#files.has(rel);
    const path = this.register(rel, opts);
    await this.#refuseLinks(rel);
    await atomicWriteWith(path, write);
    if (isNew) await this.#recordRegistry(rel);
  }

  /** Appends text to a file (one write call, so lines are never interleaved). */
  async appendText(rel: string, text: string, opts: FileOptions): Promise<void> {
    const isNew = !this.#files.has(rel);
    const path = this.register(rel, opts);
    await this.#refuseLinks(rel);
    await Deno.mkdir(join(path, ".."), { recursive: true });
    {
      using f = await Deno.open(path, { append: true, create: true });
      const bytes = new TextEncoder().encode(text);
      let off = 0;
      while (off < bytes.length) off += await f.write(bytes.subarray(off));
    }
    if (isNew) await this.#recordRegistry(rel);
  }

  /** Appends one JSON object as a line. */
  async appendJsonl(rel: string, value: unknown, opts: FileOptions): Promise<void> {
    await this.appendText(rel, jsonLine(value), opts);
  }

  /** Atomically replaces status.json (with the current list of registered files). */
  setStatus(status: RunStatus, error?: string): Promise<void> {
    this.#status = { status, error };
    // Serialised, so concurrent writers cannot leave an older file list in place.
    const next = this.#statusChain.catch(() => {}).then(() => this.#writeStatus());
    this.#statusChain = next;
    return next;
  }

  /**
   * Writes status.json at once, synchronously (temporary file, rename): for the moment before
   * the process exits on a second Ctrl-C, when no promise would run to its end.
   */
  setStatusSync(status: RunStatus, error?: string): void {
    // Once seal() has written the final status, it stands (bundle.json will hash that file).
    if (this.#finalStatusWritten) return;
    this.#status = { status, error };
    const path = join(this.dir, "status.json");
    // A name isTempFile() knows (a counter no async write reaches), so seal/resume clean it up.
    const tmp = join(this.dir, `.status.json.${Deno.pid}.4294967295.tmp`);
    Deno.writeTextFileSync(tmp, JSON.stringify(this.#statusRecord(), null, 2) + "\n");
    Deno.renameSync(tmp, path);
  }

  #statusRecord(): StatusRecord {
    const { status, error } = this.#status!;
    const files: Record<string, boolean> = {};
    for (const [rel, o] of [...this.#files].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (rel !== "status.json") files[rel] = o.deterministic;
    }
    return {
      status,
      experiment: this.experiment,
      runId: this.runId,
      ...(error !== undefined ? { error } : {}),
      updatedAt: new Date().toISOString(),
      files,
    };
  }

  async #writeStatus(): Promise<void> {
    const rec = this.#statusRecord();
    await this.writeFile("status.json", JSON.stringify(rec, null, 2) + "\n", {
      deterministic: false,
    });
  }

  /**
   * Ends the bundle: checks every registered file exists and nothing else was written, sets the
   * final status (a `completed` run with a missing or stray file becomes `failed`), hashes every
   * file and writes bundle.json. Returns the index.
   */
  async seal(status: Exclude<RunStatus, "running">, error?: string): Promise<BundleIndex> {
    const problems: string[] = [];
    const tree = await scanTree(this.dir);
    const onDisk = tree.files;
    for (const odd of tree.odd) {
      problems.push(`${odd.path} is ${odd.kind}; bundles hold only regular files`);
      this.#files.delete(odd.path);
    }
    for (const rel of onDisk) {
      if (isTempFile(rel)) await Deno.remove(join(this.dir, rel)); // left by an interrupted write
      else if (rel !== "bundle.json" && rel !== "status.json" && !this.#files.has(rel)) {
        problems.push(`${rel} was written outside the run context`);
        this.#files.set(rel, { deterministic: false });
      }
    }
    const present = new Set(onDisk);
    for (const rel of this.#files.keys()) {
      if (rel !== "status.json" && !present.has(rel)) {
        problems.push(`${rel} was registered but never written`);
      }
    }
    for (const rel of [...this.#files.keys()]) if (!present.has(rel)) this.#files.delete(rel);
    if (problems.length > 0 && status === "completed") {
      status = "failed";
      error = `the bundle is incomplete: ${problems.join("; ")}`;
    }
    await this.setStatus(status, error);
    this.#finalStatusWritten = true;
    const files: BundleFileEntry[] = [];
    for (const rel of [...this.#files.keys()].sort()) {
      const { size, sha256 } = await hashFile(join(this.dir, rel));
      files.push({ path: rel, size, sha256, deterministic: this.#files.get(rel)!.deterministic });
    }
    const index: BundleIndex = {
      format: BUNDLE_FORMAT,
      experiment: this.experiment,
      runId: this.runId,
      status,
      files,
      rootHash: rootHashOf(files),
    };
    await atomicWriteFile(join(this.dir, "bundle.json"), serializeIndex(index));
    this.#sealed = index;
    return index;
  }
}
