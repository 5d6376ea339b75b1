/**
 * Small file-system helpers shared by every layer (no dependencies on the rest of lib/).
 *
 * @module
 */

/** Whether `path` exists (file or directory); errors other than "not found" are thrown. */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Whether `dir` is missing or an empty folder; errors other than "not found" are thrown. */
export async function isEmptyOrMissing(dir: string): Promise<boolean> {
  try {
    for await (const _ of Deno.readDir(dir)) return false;
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return true;
    throw e;
  }
}
