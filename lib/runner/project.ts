/**
 * Where the project lives: experiments and results are found relative to the root (the
 * directory of deno.json and main.ts), whatever the working directory is.
 *
 * @module
 */
import { join } from "node:path";
import { PROJECT_ROOT } from "../util/project_path.ts";

/** Absolute path of the project root (lib/util/project_path.ts: manifest paths resolve here). */
export { PROJECT_ROOT };
/** Where experiment names are looked up. */
export const EXPERIMENTS_DIR: string = join(PROJECT_ROOT, "experiments");
/** Where bundles go unless `--out` says otherwise. */
export const RESULTS_DIR: string = join(PROJECT_ROOT, "results");
