/**
 * Clear messages for the faults a long run meets: a bundle write that fails (disk full,
 * permissions, I/O error) says which bundle file and why, so the failed run's message names it.
 *
 * @module
 */
import { UserError } from "../util/user_error.ts";

/** A bundle file could not be written; `cause` is the original error. */
export class BundleWriteError extends UserError {
  override name = "BundleWriteError";
  override readonly resumeHelps = true;
  /** The bundle-relative path that was being written. */
  readonly path: string;
  constructor(path: string, cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause);
    const hint = cause instanceof Error && /No space left|os error 28|ENOSPC/i.test(why)
      ? " (the disk is full: free space, then resume)"
      : cause instanceof Deno.errors.PermissionDenied
      ? " (permission denied: make the results folder writable, then resume)"
      : "";
    super(`cannot write bundle file ${path}: ${why}${hint}`, { cause });
    this.path = path;
  }
}

/** Runs a bundle write, turning its failure into a {@link BundleWriteError} naming `path`. */
export async function namedWrite<T>(path: string, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (e) {
    if (e instanceof BundleWriteError) throw e;
    throw new BundleWriteError(path, e);
  }
}
