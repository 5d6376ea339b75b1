/**
 * The one rule for paths written inside a manifest (and `--set` values, which become part of
 * it): an absolute path is used as it is; a relative one is relative to the project root (the
 * folder of deno.json and main.ts), whatever folder the command was started from. Shipped
 * manifests name `experiments/assets/...` and `results/...` this way. Paths typed as command
 * arguments (`--out`, a bundle folder, `--model`) are relative to the current folder instead.
 *
 * A leaf module: every part of the program may import it.
 *
 * @module
 */
import { isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Absolute path of the project root. */
export const PROJECT_ROOT: string = fileURLToPath(new URL("../../", import.meta.url)).replace(
  /\/$/,
  "",
);

/** Resolves a path named in a manifest: absolute as is, else against {@link PROJECT_ROOT}. */
export function projectPath(path: string): string {
  return isAbsolute(path) ? path : resolve(PROJECT_ROOT, path);
}
