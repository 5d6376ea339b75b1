/**
 * What is in a member's folder, and whether the sweep may use it. A completed member is used
 * only after its bundle verifies byte for byte, its manifest is the one the sweep resolved, and
 * (for a member that starts from another) its provenance names the upstream member's root hash.
 * Anything else there is refused, never removed: the sweep does not delete what it cannot vouch
 * for.
 *
 * @module
 */
import { join } from "node:path";
import { BUNDLE_INDEX_SCHEMA, STATUS_SCHEMA } from "../bundle/format.ts";
import { isBundleDir } from "../bundle/nested.ts";
import { verifyBundle } from "../bundle/verify.ts";
import { canonicalJson } from "../manifest/canonical.ts";
import { changedKeys } from "../manifest/diff.ts";
import { tryReadJson } from "../util/json_file.ts";
import { isEmptyOrMissing } from "../util/fs.ts";
import type { SweepMember } from "./aggregation.ts";
import type { PlannedMember } from "./plan.ts";

/** A member folder's state, from the sweep's point of view. */
export type MemberState =
  /** Nothing there yet. */
  | { state: "missing" }
  /** A run of this member that did not finish (killed, interrupted, failed): resumable. */
  | { state: "unfinished"; status: string; error?: string }
  /** Completed, verified, of the planned manifest: usable. */
  | { state: "complete"; member: SweepMember; codeVersion: string | null; runId: string }
  /** Something the sweep must not use or overwrite; `why` says what and what to do. */
  | { state: "refused"; why: string };

/** The root hashes a bundle's provenance names as its parents. */
async function parentRootHashes(dir: string): Promise<string[]> {
  const prov = await tryReadJson(join(dir, "provenance.json")) as
    | { parents?: { rootHash?: unknown }[] }
    | undefined;
  return (prov?.parents ?? []).map((p) => String(p?.rootHash ?? ""));
}

/**
 * Inspects the folder of `m` inside the sweep's bundle `sweepDir`. `upstreamRootHash` is the
 * verified root hash of the member `m` starts from (null when it starts from no member).
 */
export async function inspectMember(
  sweepDir: string,
  m: PlannedMember,
  upstreamRootHash: string | null,
): Promise<MemberState> {
  const dir = join(sweepDir, m.dir);
  const remove = `move it away (or remove it) to run the member again`;
  if (await isEmptyOrMissing(dir)) return { state: "missing" };
  if (!(await isBundleDir(dir))) {
    return { state: "refused", why: `${m.dir} holds files but no bundle; ${remove}` };
  }
  const manifest = await tryReadJson(join(dir, "manifest.json"));
  if (manifest !== undefined && canonicalJson(manifest) !== canonicalJson(m.manifest.resolved)) {
    const keys = changedKeys(manifest, m.manifest.resolved);
    return {
      state: "refused",
      why: `${m.dir} holds a run of another manifest than the sweep resolved (differs in: ` +
        `${keys.join(", ")}); ${remove}, or run the sweep into another folder with --out`,
    };
  }
  const index = BUNDLE_INDEX_SCHEMA.safeParse(await tryReadJson(join(dir, "bundle.json")));
  if (!index.success || index.data.status !== "completed") {
    const st = STATUS_SCHEMA.safeParse(await tryReadJson(join(dir, "status.json")));
    const status = index.success ? index.data.status : st.success ? st.data.status : "unknown";
    const error = st.success ? st.data.error : undefined;
    return { state: "unfinished", status, ...(error ? { error } : {}) };
  }
  const v = await verifyBundle(dir);
  if (!v.ok) {
    const shown = v.problems.slice(0, 3).join("; ") + (v.problems.length > 3 ? "; ..." : "");
    return {
      state: "refused",
      why: `${m.dir} is a completed member that does not verify (${shown}); it was changed ` +
        `after it ran: restore it, or ${remove}`,
    };
  }
  if (manifest === undefined) {
    return { state: "refused", why: `${m.dir} is a completed bundle without manifest.json` };
  }
  if (upstreamRootHash !== null && !(await parentRootHashes(dir)).includes(upstreamRootHash)) {
    return {
      state: "refused",
      why: `${m.dir} did not start from member ${m.after} as it is now (root ` +
        `${upstreamRootHash.slice(0, 16)}...; its provenance.json names other parents); ${remove}`,
    };
  }
  const prov = await tryReadJson(join(dir, "provenance.json")) as
    | { codeVersion?: unknown }
    | undefined;
  return {
    state: "complete",
    member: {
      id: m.id,
      arm: m.arm,
      seed: m.seed,
      dir,
      rootHash: v.rootHash,
      manifest: m.manifest.resolved,
    },
    codeVersion: typeof prov?.codeVersion === "string" ? prov.codeVersion : null,
    runId: index.data.runId,
  };
}
