/**
 * The on-disk format of a result bundle's index, `bundle.json`, and of `status.json`.
 *
 * @module
 */
import { z } from "zod";

/** Format tag written into every bundle.json. */
export const BUNDLE_FORMAT = "selfplay-bundle/1";

/** Life cycle of a run. Only `completed` bundles are results; the others are evidence. */
export type RunStatus = "running" | "completed" | "failed" | "interrupted";

/** One file of a bundle as listed in bundle.json. */
export interface BundleFileEntry {
  /** '/'-separated path relative to the bundle directory. */
  path: string;
  size: number;
  sha256: string;
  /** True when a rerun on the same adapter must reproduce the file byte for byte. */
  deterministic: boolean;
}

/** The content of bundle.json, written last when a run ends. */
export interface BundleIndex {
  format: typeof BUNDLE_FORMAT;
  experiment: string;
  runId: string;
  status: Exclude<RunStatus, "running">;
  /** Sorted by path; bundle.json itself is not listed. */
  files: BundleFileEntry[];
  /** sha256 over the sorted `"path\0sha256\n"` lines of `files`. */
  rootHash: string;
}

/** The content of status.json (run-specific: it carries a timestamp). */
export interface StatusRecord {
  status: RunStatus;
  experiment: string;
  runId: string;
  /** Why the run failed or stopped. */
  error?: string;
  /** ISO time of the last status change. */
  updatedAt: string;
  /** Files registered so far (path -> deterministic), for resuming a run that never sealed. */
  files?: Record<string, boolean>;
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Validates a parsed bundle.json. */
export const BUNDLE_INDEX_SCHEMA = z.strictObject({
  format: z.literal(BUNDLE_FORMAT),
  experiment: z.string().min(1),
  runId: z.string().min(1),
  status: z.enum(["completed", "failed", "interrupted"]),
  files: z.array(z.strictObject({
    path: z.string().min(1),
    size: z.number().int().min(0),
    sha256: z.string().regex(HEX64),
    deterministic: z.boolean(),
  })),
  rootHash: z.string().regex(HEX64),
});

/** Validates a parsed status.json. */
export const STATUS_SCHEMA = z.strictObject({
  status: z.enum(["running", "completed", "failed", "interrupted"]),
  experiment: z.string(),
  runId: z.string(),
  error: z.string().optional(),
  updatedAt: z.string(),
  files: z.record(z.string(), z.boolean()).optional(),
});

/** The exact bytes of bundle.json for an index (fixed key order, 2-space indent, final newline). */
export function serializeIndex(index: BundleIndex): string {
  const ordered: BundleIndex = {
    format: index.format,
    experiment: index.experiment,
    runId: index.runId,
    status: index.status,
    files: index.files.map((f) => ({
      path: f.path,
      size: f.size,
      sha256: f.sha256,
      deterministic: f.deterministic,
    })),
    rootHash: index.rootHash,
  };
  return JSON.stringify(ordered, null, 2) + "\n";
}

/** Rejects bundle-relative paths that could escape the bundle or are not plain. */
export function checkRelPath(rel: string): string | null {
  if (rel === "" || rel.startsWith("/") || rel.includes("\\")) return "must be a relative '/' path";
  if (rel.split("/").some((p) => p === "" || p === "." || p === "..")) {
    return "must not contain empty, '.' or '..' parts";
  }
  return null;
}
