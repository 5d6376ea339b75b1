/**
 * The manifest of a `sweep`: arms (each an ordinary experiment with `--set`-style overrides,
 * optionally started from another arm's member of the same seed) times seeds, the launcher that
 * runs the members (a local worker pool or Slurm job arrays), and the aggregation that reads
 * them. `workers` and `launcher` say how to run, not what: they stay out of the run id.
 *
 * @module
 */
import { z } from "zod";
import { AGGREGATIONS } from "./aggregation.ts";

/** Arm names: they become folder names and Slurm job names. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

const ArmSchema = z.strictObject({
  /** The arm's name (`members/<name>/s<seed>/`). */
  name: z.string().regex(NAME, "must match [A-Za-z0-9][A-Za-z0-9._-]*"),
  /** An experiment name (experiments/<name>.jsonc) or a manifest path (from the project root). */
  experiment: z.string().min(1),
  /** Overrides as `--set` takes them: key path -> value (JSON value, typed as written). */
  set: z.record(z.string(), z.unknown()).default({}),
  /**
   * Another arm whose member of the same seed must complete first; this arm's member starts from
   * its bundle (its `model` becomes that bundle, as LSP-then-GRPO starts GRPO from LSP's model).
   */
  after: z.string().nullable().default(null),
});

/** Slurm resources of a member's task; per arm in `launcher.arms` (each key optional there). */
const slurmResources = {
  /** `--partition` ("" = the cluster's default). */
  partition: z.string(),
  /** `--account` ("" = the user's default). */
  account: z.string(),
  /** `--qos` (""= none). */
  qos: z.string(),
  /** `--constraint` ("" = none). */
  constraint: z.string(),
  /** GPUs per member (`--gres=gpu:N`; 0 = none). */
  gpus: z.number().int().min(0),
  /** `--cpus-per-task`. */
  cpusPerTask: z.number().int().min(1),
  /** `--mem` per member, e.g. "64G" ("" = the partition's default). */
  mem: z.string(),
  /** `--time` limit per member, e.g. "1-12:00:00" ("" = the partition's default). */
  time: z.string(),
  /** Further sbatch options, as written (e.g. "--exclusive"). */
  extraOptions: z.array(z.string()),
};

/** Resources of one arm's members, overriding the launcher's. */
export const SlurmArmSchema = z.strictObject(
  Object.fromEntries(Object.entries(slurmResources).map(([k, v]) => [k, v.optional()])),
) as z.ZodType<Partial<SlurmResources>>;

/** Resources of a member's Slurm task. */
export type SlurmResources = {
  partition: string;
  account: string;
  qos: string;
  constraint: string;
  gpus: number;
  cpusPerTask: number;
  mem: string;
  time: string;
  extraOptions: string[];
};

const LocalLauncherSchema = z.strictObject({ kind: z.literal("local") });

const SlurmLauncherSchema = z.strictObject({
  kind: z.literal("slurm"),
  partition: slurmResources.partition.default(""),
  account: slurmResources.account.default(""),
  qos: slurmResources.qos.default(""),
  constraint: slurmResources.constraint.default(""),
  gpus: slurmResources.gpus.default(0),
  cpusPerTask: slurmResources.cpusPerTask.default(1),
  mem: slurmResources.mem.default(""),
  time: slurmResources.time.default(""),
  extraOptions: slurmResources.extraOptions.default([]),
  /** Per-arm resources, by arm name. */
  arms: z.record(z.string(), SlurmArmSchema).default({}),
  /** Members of one arm running at once (`--array=...%N`); 0 = as many as the cluster gives. */
  maxParallel: z.number().int().min(0).default(0),
  /** The command that runs Deno on the nodes; [] = the Deno that runs the sweep (its path). */
  deno: z.array(z.string().min(1)).default([]),
  /** Shell lines each task runs before its member (`module load ...`, `export ...`). */
  setup: z.array(z.string()).default([]),
  /** Seconds between two looks at the queue (`squeue`). */
  pollSeconds: z.number().positive().default(30),
});

/** Where members run: child processes of this one, or Slurm job arrays. */
export const LauncherSchema = z.discriminatedUnion("kind", [
  LocalLauncherSchema,
  SlurmLauncherSchema,
]);

/** The parsed `launcher` section. */
export type LauncherParams = z.output<typeof LauncherSchema>;
/** The parsed Slurm launcher section. */
export type SlurmParams = z.output<typeof SlurmLauncherSchema>;

/** `aggregate`: a registered aggregation's name as `kind`, its own parameters beside it. */
const AggregateSchema = z.looseObject({ kind: AGGREGATIONS.nameSchema() }).transform(
  (v, ctx) => {
    const { kind, ...rest } = v;
    const parsed = AGGREGATIONS.get(kind).schema.safeParse(rest);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        ctx.issues.push({ ...issue, input: issue.input } as never);
      }
      return z.NEVER;
    }
    return { kind, ...parsed.data } as { kind: string } & Record<string, unknown>;
  },
);

/** Parameters of the `sweep` kind. */
export const SweepSchema = z.strictObject({
  /** Each arm runs once per seed, as its experiment with `seed` set to it. */
  seeds: z.array(z.number().int().min(0).max(2 ** 32 - 1)).min(1),
  arms: z.array(ArmSchema).min(1),
  /** Members run at once by the local launcher (a pool of child processes). */
  workers: z.number().int().min(1).default(1),
  launcher: LauncherSchema.default({ kind: "local" }),
  /** What to compute from the finished members (null: nothing; the members are the result). */
  aggregate: AggregateSchema.nullable().default(null),
}).superRefine((s, ctx) => {
  const issue = (path: (string | number)[], message: string) =>
    ctx.addIssue({ code: "custom", path, message });
  const seen = new Set<number>();
  s.seeds.forEach((seed, i) => {
    if (seen.has(seed)) issue(["seeds", i], `seed ${seed} is listed twice`);
    seen.add(seed);
  });
  const names = s.arms.map((a) => a.name);
  s.arms.forEach((arm, i) => {
    if (names.indexOf(arm.name) !== i) issue(["arms", i, "name"], `arm "${arm.name}" twice`);
    if ("seed" in arm.set) {
      issue(["arms", i, "set", "seed"], "the sweep sets each member's seed from `seeds`");
    }
    if (arm.after !== null && !names.includes(arm.after)) {
      issue(["arms", i, "after"], `no arm is called "${arm.after}" (arms: ${names.join(", ")})`);
    }
    // A chain of `after` must end: following it from any arm never returns to that arm.
    const chain = [arm.name];
    for (let at = arm.after; at !== null;) {
      if (chain.includes(at)) {
        issue(["arms", i, "after"], `"after" forms a cycle: ${[...chain, at].join(" -> ")}`);
        break;
      }
      chain.push(at);
      at = s.arms.find((a) => a.name === at)?.after ?? null;
    }
  });
  if (s.launcher.kind === "slurm") {
    for (const name of Object.keys(s.launcher.arms)) {
      if (!names.includes(name)) {
        issue(["launcher", "arms", name], `no arm is called "${name}" (arms: ${names.join(", ")})`);
      }
    }
  }
});

/** Parsed `sweep` parameters. */
export type SweepParams = z.output<typeof SweepSchema>;

/** The keys that say how a sweep runs, not what it computes (left out of its run id). */
export const SWEEP_EXECUTION_KEYS = ["workers", "launcher"] as const;
