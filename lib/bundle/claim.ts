/**
 * The determinism claim every bundle makes (recorded in provenance.json under
 * `extra.determinism`), and what `repro` checks: the files bundle.json marks deterministic are
 * reproduced byte for byte by a rerun of manifest.json on the same adapter.
 *
 * @module
 */

/** What a bundle promises about its deterministic files. */
export interface DeterminismClaim {
  /** The claim in a few words. */
  claim: string;
  /** Under which conditions it holds. */
  scope: string[];
  /** Which files it covers. */
  covers: string;
  /** How to check it. */
  check: string;
}

/** The claim the runner records in every bundle's provenance. */
export const DETERMINISM_CLAIM: DeterminismClaim = {
  claim: "bitwise on the same adapter",
  scope: [
    "the same resolved manifest (manifest.json) and input hashes",
    "the same code version (provenance.codeVersion)",
    "the same WebGPU adapter and driver (provenance.gpu)",
  ],
  covers: "every file bundle.json lists with deterministic: true",
  check: "deno task repro <bundle>",
};

/** The adapter facts that must match for the claim to apply (from provenance.gpu). */
export function adapterIdentity(gpu: unknown): string | null {
  if (typeof gpu !== "object" || gpu === null) return null;
  const g = gpu as Record<string, unknown>;
  return [g.vendor, g.architecture, g.device, g.description, g.backend]
    .map((v) => String(v ?? ""))
    .join(" / ");
}
