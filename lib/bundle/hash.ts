/**
 * SHA-256 of bytes, files (streamed, so checkpoints of any size work) and directory trees.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";

/** Hex SHA-256 of bytes or a UTF-8 string. */
export function sha256Hex(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Size and hex SHA-256 of a file, read in chunks. */
export async function hashFile(path: string): Promise<{ size: number; sha256: string }> {
  const h = createHash("sha256");
  let size = 0;
  using f = await Deno.open(path, { read: true });
  const buf = new Uint8Array(1 << 20);
  for (;;) {
    const n = await f.read(buf);
    if (n === null) break;
    h.update(buf.subarray(0, n));
    size += n;
  }
  return { size, sha256: h.digest("hex") };
}

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
