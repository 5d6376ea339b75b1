/**
 * The code version that enters every run id: a hash over the program's source files as they are
 * on disk, so an uncommitted edit gives a new run id (git is not needed).
 *
 * @module
 */
import { join } from "node:path";
import { hashFile } from "../util/hash_file.ts";
import { listFiles, rootHashOf } from "./hash.ts";

/** The files and directories, relative to the project root, that make up the program. */
export const CODE_PATHS = ["main.ts", "deno.json", "deno.lock", "lib", "gpu"] as const;

/** Hex sha256 over the sorted `"path\0sha256\n"` lines of every file under {@link CODE_PATHS}. */
export async function codeVersion(root: string): Promise<string> {
  const files: { path: string; sha256: string }[] = [];
  for (const p of CODE_PATHS) {
    const abs = join(root, p);
    let st: Deno.FileInfo;
    try {
      st = await Deno.stat(abs);
    } catch {
      continue; // e.g. no deno.lock yet
    }
    const rels = st.isDirectory ? (await listFiles(abs)).map((r) => `${p}/${r}`) : [p];
    for (const rel of rels) {
      files.push({ path: rel, sha256: (await hashFile(join(root, rel))).sha256 });
    }
  }
  return rootHashOf(files);
}
