/**
 * Where the project lives: experiments and results are found relative to the root (the
 * directory of deno.json and main.ts), whatever the working directory is.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { join } from "node:path";

/** Absolute path of the project root. */
export const PROJECT_ROOT: string = fileURLToPath(new URL("../../", import.meta.url)).replace(
  /\/$/,
  "",
);
/** Where experiment names are looked up. */
export const EXPERIMENTS_DIR: string = join(PROJECT_ROOT, "experiments");
/** Where bundles go unless `--out` says otherwise. */
export const RESULTS_DIR: string = join(PROJECT_ROOT, "results");
