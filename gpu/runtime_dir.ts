/**
 * Mesa's drivers (lavapipe, llvmpipe's GL) print "XDG_RUNTIME_DIR is invalid or not set" on
 * every adapter request when the variable is missing, as it is in containers and CI. Before the
 * first adapter loads, point it at a private folder of ours so that the noise never appears.
 *
 * @module
 */
import { join } from "node:path";

/** Whether `dir` is a folder of this user that only this user may enter (what Mesa expects). */
function isPrivateDir(dir: string): boolean {
  try {
    const st = Deno.lstatSync(dir);
    return st.isDirectory && (st.mode === null || (st.mode & 0o077) === 0) &&
      (st.uid === null || st.uid === Deno.uid());
  } catch {
    return false;
  }
}

/**
 * Sets XDG_RUNTIME_DIR for this process (and the children it starts) when it is unset or not a
 * private folder: `<tmp>/selfplay-runtime-<uid>`, created with mode 0700 (never a folder someone
 * else made). Returns the folder used, or null when none could be had (the noise then stays).
 */
export function ensureRuntimeDir(): string | null {
  const current = Deno.env.get("XDG_RUNTIME_DIR");
  if (current && isPrivateDir(current)) return current;
  const uid = Deno.uid() ?? 0;
  const dir = join(Deno.env.get("TMPDIR") || "/tmp", `selfplay-runtime-${uid}`);
  try {
    Deno.mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if (!(e instanceof Deno.errors.AlreadyExists)) return null;
  }
  if (!isPrivateDir(dir)) return null;
  Deno.env.set("XDG_RUNTIME_DIR", dir);
  return dir;
}
