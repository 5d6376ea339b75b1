/**
 * Paths anchored at an environment variable: `${NAME}/rest` is the folder in NAME joined with
 * `rest`. A sweep names one member's bundle in another member's manifest this way
 * (`${SELFPLAY_SWEEP_DIR}/members/lsp/s0`), so the manifest, and every byte that depends on it,
 * stays the same wherever the sweep's folder is (a reproduction beside it, a copy elsewhere).
 *
 * @module
 */

import { UserError } from "./user_error.ts";

const ANCHORED = /^\$\{([A-Za-z_][A-Za-z0-9_]*)\}(\/.*)?$/;

/** The variable a path is anchored at, or null for an ordinary path. */
export function envAnchor(path: string): string | null {
  return ANCHORED.exec(path)?.[1] ?? null;
}

/**
 * `path` with a leading `${NAME}` replaced by the value of NAME; other paths are returned as
 * they are. An unset or empty NAME is an error naming `field` and the variable.
 */
export function expandEnvAnchor(path: string, field: string): string {
  const m = ANCHORED.exec(path);
  if (!m) return path;
  const value = Deno.env.get(m[1]);
  if (!value) {
    throw new UserError(
      `${field}: "${path}" starts at the environment variable ${m[1]}, which is not set; set ` +
        `it to the folder the path starts from (for a sweep's member: the sweep's bundle folder)`,
    );
  }
  return value.replace(/\/+$/, "") + (m[2] ?? "");
}
