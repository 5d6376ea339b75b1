/**
 * Atomic file writes: write a temporary file next to the target, fsync it, rename it over the
 * target, fsync the directory. A reader sees the old file or the new one, never half of one.
 * The one atomic writer of the project (bundles, checkpoints, model files, caches).
 *
 * @module
 */
import { dirname, join } from "node:path";
import { writeAll } from "./byte_sink.ts";

let counter = 0;

function tempName(path: string): string {
  return join(dirname(path), `.${path.split("/").pop()}.${Deno.pid}.${counter++}.tmp`);
}

async function syncDir(dir: string): Promise<void> {
  try {
    using d = await Deno.open(dir, { read: true });
    await d.sync();
  } catch {
    // Some platforms (Windows) cannot open directories; the rename is still atomic there.
  }
}

/**
 * Writes a file atomically by calling `write` on a fresh temporary file, then renaming it.
 * Creates missing parent directories. The temporary file is removed if `write` throws.
 */
export async function atomicWriteWith(
  path: string,
  write: (file: Deno.FsFile) => Promise<void>,
): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true });
  const tmp = tempName(path);
  try {
    {
      using f = await Deno.open(tmp, { write: true, createNew: true });
      await write(f);
      await f.sync();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  await syncDir(dirname(path));
}

/** Writes bytes or UTF-8 text to `path` atomically. */
export async function atomicWriteFile(path: string, data: Uint8Array | string): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  await atomicWriteWith(path, (f) => writeAll(f, bytes));
}

/** True for the temporary files {@link atomicWriteWith} leaves only if the process dies. */
export function isTempFile(relPath: string): boolean {
  return /(^|\/)\.[^/]*\.\d+\.\d+\.tmp$/.test(relPath);
}
