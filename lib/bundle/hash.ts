/**
 * SHA-256 of directory trees and file lists (the bundle's root hash); bytes and single files are
 * hashed by lib/util/hash_file.ts.
 *
 * @module
 */
import { join } from "node:path";
import { hashFile, sha256Hex } from "../util/hash_file.ts";

/** Every regular file under `dir`, as sorted '/'-separated paths relative to it. */
export async function listFiles(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(join(dir, prefix))) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory) out.push(...await listFiles(dir, rel));
    else if (e.isFile) out.push(rel);
  }
  return out.sort();
}

/** Hash of sorted `"path\0sha256\n"` lines: the root hash of a file list. */
export function rootHashOf(files: readonly { path: string; sha256: string }[]): string {
  const lines = [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
    .map((f) => `${f.path}\0${f.sha256}\n`);
  return sha256Hex(lines.join(""));
}

/**
 * Hash of a file, or of a directory tree (the root hash of its files). Used for experiment
 * inputs such as weights and datasets.
 */
export async function hashPath(path: string): Promise<string> {
  const st = await Deno.stat(path);
  if (st.isFile) return (await hashFile(path)).sha256;
  const files = [];
  for (const rel of await listFiles(path)) {
    files.push({ path: rel, sha256: (await hashFile(join(path, rel))).sha256 });
  }
  return rootHashOf(files);
}
