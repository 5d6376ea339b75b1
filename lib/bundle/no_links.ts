/**
 * Bundles hold regular files and folders only. A symbolic link (to /etc/passwd, or a folder
 * elsewhere) or a special file (a FIFO, a socket, a device) in a bundle is refused: verify names
 * it, and the writer never writes through one, so a bundle cannot read or write outside itself.
 *
 * @module
 */
import { join } from "node:path";

/** What a non-regular file-system entry is, in words. */
export function oddKind(info: Deno.FileInfo): string {
  if (info.isSymlink) return "a symbolic link";
  if (info.isFifo) return "a FIFO (named pipe)";
  if (info.isSocket) return "a socket";
  if (info.isCharDevice || info.isBlockDevice) return "a device file";
  return "a special file";
}

/** A non-regular entry found under a folder: its '/' path and what it is. */
export interface OddEntry {
  path: string;
  kind: string;
}

/**
 * Every regular file under `dir` (sorted '/' paths) and every entry that is neither a regular
 * file nor a folder (symbolic links are never followed).
 */
export async function scanTree(
  dir: string,
  prefix = "",
): Promise<{ files: string[]; odd: OddEntry[] }> {
  const files: string[] = [];
  const odd: OddEntry[] = [];
  for await (const e of Deno.readDir(join(dir, prefix))) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory && !e.isSymlink) {
      const sub = await scanTree(dir, rel);
      files.push(...sub.files);
      odd.push(...sub.odd);
    } else if (e.isFile && !e.isSymlink) files.push(rel);
    else odd.push({ path: rel, kind: oddKind(await Deno.lstat(join(dir, rel))) });
  }
  files.sort();
  odd.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { files, odd };
}

/**
 * Checks the bundle path `rel` under `dir` without following links: every existing folder on the
 * way must be a real folder and the file itself, if it exists, a regular file. Returns the
 * problem in words, or null.
 */
export async function linkOnPath(dir: string, rel: string): Promise<string | null> {
  const parts = rel.split("/");
  for (let i = 0; i < parts.length; i++) {
    const sub = parts.slice(0, i + 1).join("/");
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(join(dir, sub));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    }
    if (i === parts.length - 1) {
      if (!info.isFile) {
        return `${sub} is ${info.isDirectory ? "a folder" : oddKind(info)}, not a regular file`;
      }
    } else if (!info.isDirectory) {
      return `${sub} is ${info.isFile ? "a file" : oddKind(info)}, not a folder`;
    }
  }
  return null;
}
