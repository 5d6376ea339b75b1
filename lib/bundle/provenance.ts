/**
 * Provenance: where and how a run happened (host, Deno, adapter, git state, lockfile, inputs,
 * parents, times). Run-specific by nature, so kept apart from the deterministic outputs.
 *
 * @module
 */
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import type { GpuInfo } from "../../gpu/device.ts";
import { hashFile, sha256Hex } from "../util/hash_file.ts";

/** Git state of the working tree. */
export interface GitState {
  commit: string | null;
  dirty: boolean;
  /** sha256 of `git diff HEAD` when dirty (untracked files are listed, not hashed). */
  diffSha256: string | null;
  untracked: string[];
  /** Why git could not be asked, when it could not. */
  error?: string;
}

/** The content of provenance.json. */
export interface Provenance {
  experiment: string;
  runId: string;
  codeVersion: string;
  command: string[];
  sets: string[];
  manifestChain: string[];
  deno: { deno: string; v8: string; typescript: string };
  os: { os: string; arch: string; release: string; target: string };
  cpu: { model: string; count: number };
  memoryBytes: number;
  hostname: string;
  gpu: GpuInfo | null;
  git: GitState;
  denoLockSha256: string | null;
  inputs: Record<string, string>;
  parents: { path: string; experiment: string; runId: string; rootHash: string }[];
  resumed: boolean;
  startedAt: string;
  endedAt: string | null;
}

async function git(root: string, args: string[]): Promise<Uint8Array> {
  const out = await new Deno.Command("git", { args, cwd: root, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr).trim());
  return out.stdout;
}

/** Asks git for the commit and the uncommitted state of `root`. */
export async function gitState(root: string): Promise<GitState> {
  try {
    const dec = new TextDecoder();
    const commit = dec.decode(await git(root, ["rev-parse", "HEAD"])).trim();
    const status = dec.decode(await git(root, ["status", "--porcelain", "--untracked-files=all"]));
    const lines = status.split("\n").filter((l) => l.trim() !== "");
    const untracked = lines.filter((l) => l.startsWith("??")).map((l) => l.slice(3));
    const dirty = lines.length > 0;
    const diff = dirty ? sha256Hex(await git(root, ["diff", "HEAD", "--binary"])) : null;
    return { commit, dirty, diffSha256: diff, untracked };
  } catch (e) {
    return {
      commit: null,
      dirty: false,
      diffSha256: null,
      untracked: [],
      error: (e as Error).message.split("\n")[0],
    };
  }
}

/** Host facts for provenance. */
export function hostFacts(): Pick<
  Provenance,
  "deno" | "os" | "cpu" | "memoryBytes" | "hostname"
> {
  const c = cpus();
  let release = "";
  try {
    release = Deno.osRelease();
  } catch { /* not permitted or unsupported */ }
  let hostname = "";
  try {
    hostname = Deno.hostname();
  } catch { /* not permitted */ }
  return {
    deno: { ...Deno.version },
    os: { os: Deno.build.os, arch: Deno.build.arch, release, target: Deno.build.target },
    cpu: { model: c[0]?.model ?? "unknown", count: c.length },
    memoryBytes: totalmem(),
    hostname,
  };
}

/** sha256 of `<root>/deno.lock`, or null when there is none. */
export async function lockfileHash(root: string): Promise<string | null> {
  try {
    return (await hashFile(join(root, "deno.lock"))).sha256;
  } catch {
    return null;
  }
}
