/**
 * Test fixtures for sweeps: a few-second member experiment (tiny-grpo from the committed tiny
 * base, one small iteration, no evaluation) and sweep manifests over it, written into a folder
 * with absolute paths, so a frozen copy of the program (repro_fixtures.ts) runs them.
 */
import { join } from "node:path";
import { ROOT } from "./cli_helpers.ts";

/** The committed tiny base, by absolute path (a frozen program copy has no results/). */
const BASE = JSON.parse(Deno.readTextFileSync(join(ROOT, "experiments/assets/tiny/base.json")));

/** Writes `grpo-mini.jsonc` (about 8 s a run on lavapipe); returns its path. */
export function writeGrpoMini(dir: string): string {
  const file = join(dir, "grpo-mini.jsonc");
  Deno.writeTextFileSync(
    file,
    JSON.stringify({
      extends: join(ROOT, "experiments/tiny-grpo.jsonc"),
      description: "one small GRPO iteration from the tiny base (sweep fixture)",
      model: { ...BASE, bundle: join(ROOT, BASE.bundle) },
      iterations: 1,
      queries: 2,
      batchSize: 1,
      gradAccum: 2,
      answersPerQuery: 2,
      solver: { maxNewTokens: 8 },
      eval: { kind: "none" },
    }),
  );
  return file;
}

/**
 * Writes a sweep `name`.jsonc: arm "g" (the fixture) and arm "g2" (the fixture again, started
 * from g's member of the same seed), over `seeds`; returns its path.
 */
export function writeChainSweep(
  dir: string,
  name: string,
  extra: Record<string, unknown> = {},
  seeds = [0, 1],
): string {
  const member = writeGrpoMini(dir);
  const file = join(dir, `${name}.jsonc`);
  Deno.writeTextFileSync(
    file,
    JSON.stringify({
      kind: "sweep",
      description: "a GRPO arm and a GRPO-after-GRPO arm (sweep fixture)",
      seeds,
      arms: [
        { name: "g", experiment: member },
        { name: "g2", experiment: member, after: "g", set: { "optimizer.lr": 0.001 } },
      ],
      workers: 2,
      aggregate: { kind: "metrics-table", keys: ["iter", "solverReward.mean", "loss.solver"] },
      ...extra,
    }),
  );
  return file;
}

/** The parsed bundle.json of a bundle. */
export function indexOf(
  dir: string,
): { rootHash: string; status: string; files: { path: string }[] } {
  return JSON.parse(Deno.readTextFileSync(join(dir, "bundle.json")));
}
