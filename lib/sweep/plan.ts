/**
 * A sweep's expansion into members: arm x seed -> one ordinary experiment, resolved by the same
 * loader `exp` uses from the same arguments (`exp <experiment> --set ... --out <member folder>`):
 * first the `after` wiring (the `model` of a dependent member becomes the bundle of its
 * upstream member of the same seed), then the arm's `set` values in key order (as the resolved
 * manifest stores them, so a rerun from manifest.json plans the same), then `seed`.
 *
 * @module
 */
import { basename, isAbsolute, resolve } from "node:path";
import type { ExperimentKind } from "../experiment/kind.ts";
import { canonicalJson } from "../manifest/canonical.ts";
import { ManifestError } from "../manifest/errors.ts";
import { loadManifest, type ResolvedManifest } from "../manifest/load.ts";
import type { SweepParams } from "./schema.ts";

/** The environment variable that gives a member's process the sweep's bundle folder. */
export const SWEEP_DIR_ENV = "SELFPLAY_SWEEP_DIR";

/** Where the members' bundles live inside the sweep's bundle. */
export const MEMBERS_DIR = "members";

/** One member of a sweep, as planned. */
export interface PlannedMember {
  /** `<arm>/s<seed>`. */
  id: string;
  arm: string;
  seed: number;
  /** The seed's position in `seeds` (a Slurm array task id). */
  seedIndex: number;
  /** Its bundle folder, relative to the sweep's bundle (`members/<arm>/s<seed>`). */
  dir: string;
  /** The arm's experiment as the sweep names it. */
  experiment: string;
  /** What `exp` is given: the name, or the manifest's absolute path. */
  ref: string;
  /** The member it starts from (`<arm>/s<seed>`), or null. */
  after: string | null;
  /** The `--set` arguments, in the order they apply. */
  sets: string[];
  /** The member's manifest, resolved as `exp` resolves it. */
  manifest: ResolvedManifest;
}

/** A sweep's members, arm-major in the manifest's order. */
export interface SweepPlan {
  arms: string[];
  seeds: number[];
  members: PlannedMember[];
}

/** What expansion needs besides the sweep's parameters. */
export interface PlanOptions {
  /** The sweep's manifest file (for messages). */
  sweepFile: string;
  experimentsDir: string;
  projectRoot: string;
  /** The kinds a member may have (a sweep's own kind excluded: sweeps do not nest). */
  kinds: readonly ExperimentKind[];
}

/** A member's id. */
export function memberId(arm: string, seed: number): string {
  return `${arm}/s${seed}`;
}

/** True when an arm names a manifest by path rather than by experiment name. */
function isPathRef(ref: string): boolean {
  return ref.includes("/") || ref.includes("\\") || /\.jsonc?$/.test(ref);
}

/** What `exp` is given for an arm's experiment: a name, or an absolute manifest path. */
export function experimentRef(experiment: string, projectRoot: string): string {
  if (!isPathRef(experiment)) return experiment;
  return isAbsolute(experiment) ? experiment : resolve(projectRoot, experiment);
}

/** The experiment name `exp` gives a manifest (its file name without `.jsonc`). */
function experimentName(experiment: string): string {
  return basename(experiment).replace(/\.jsonc?$/, "");
}

/** The `--set` argument that gives `path` the JSON value `value`. */
function setArg(path: string, value: unknown): string {
  return `${path}=${JSON.stringify(value)}`;
}

/** Resolves every member of the sweep; a problem is a {@link ManifestError} naming the arm. */
export function planSweep(params: SweepParams, opts: PlanOptions): SweepPlan {
  const members: PlannedMember[] = [];
  for (const arm of params.arms) {
    const ref = experimentRef(arm.experiment, opts.projectRoot);
    params.seeds.forEach((seed, seedIndex) => {
      const id = memberId(arm.name, seed);
      const after = arm.after === null ? null : memberId(arm.after, seed);
      const sets: string[] = [];
      if (after !== null) {
        const upstream = params.arms.find((a) => a.name === arm.after)!;
        sets.push(setArg("model", {
          bundle: `\${${SWEEP_DIR_ENV}}/${MEMBERS_DIR}/${after}`,
          bundleExperiment: experimentName(upstream.experiment),
        }));
      }
      // In key order, as the resolved manifest stores them (a key before the keys below it).
      for (const path of Object.keys(arm.set).sort()) sets.push(setArg(path, arm.set[path]));
      sets.push(setArg("seed", seed));
      let manifest: ResolvedManifest;
      try {
        manifest = loadManifest(ref, {
          experimentsDir: opts.experimentsDir,
          kinds: opts.kinds,
          sets,
        });
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        throw new ManifestError(opts.sweepFile, `arm "${arm.name}" (member ${id}): ${why}`);
      }
      members.push({
        id,
        arm: arm.name,
        seed,
        seedIndex,
        dir: `${MEMBERS_DIR}/${id}`,
        experiment: arm.experiment,
        ref,
        after,
        sets,
        manifest,
      });
    });
  }
  for (const m of members) {
    const up = members.find((u) => u.id === m.after);
    if (m.after !== null && !up) {
      throw new ManifestError(opts.sweepFile, `member ${m.id}: no member ${m.after} to start from`);
    }
    // A member others start from must leave its final model behind.
    if (up && up.manifest.resolved.finalCheckpoint === false) {
      throw new ManifestError(
        opts.sweepFile,
        `arm "${m.arm}" starts from arm "${up.arm}", whose members keep no final checkpoint ` +
          `(finalCheckpoint: false); set "finalCheckpoint": true in arm "${up.arm}"'s set`,
      );
    }
  }
  return { arms: params.arms.map((a) => a.name), seeds: [...params.seeds], members };
}

/** plan.json: the members and their resolved manifests (deterministic: no paths, no times). */
export function planJson(name: string, plan: SweepPlan): string {
  return canonicalJson(
    {
      format: "selfplay-sweep-plan/1",
      sweep: name,
      arms: plan.arms,
      seeds: plan.seeds,
      members: plan.members.map((m) => ({
        id: m.id,
        arm: m.arm,
        seed: m.seed,
        dir: m.dir,
        experiment: m.experiment,
        after: m.after,
        sets: m.sets,
        manifest: m.manifest.resolved,
      })),
    },
    2,
  ) + "\n";
}
