/**
 * Run ids: what a run is (its resolved manifest, its inputs, the code) decides its id, so the
 * same experiment on the same code and inputs lands in the same directory.
 *
 * @module
 */
import { canonicalJson } from "../manifest/canonical.ts";
import { sha256Hex } from "../util/hash_file.ts";

/** First 16 hex digits of sha256(canonical JSON of {manifest, inputs, code}). */
export function runIdOf(
  manifest: Record<string, unknown>,
  inputs: Record<string, string>,
  code: string,
): string {
  return sha256Hex(canonicalJson({ manifest, inputs, code })).slice(0, 16);
}
