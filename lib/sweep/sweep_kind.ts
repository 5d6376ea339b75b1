/**
 * The `sweep` kind: arms x seeds of ordinary experiments, run by a launcher, verified and
 * aggregated by hash. Its bundle is one self-contained folder:
 *
 * ```
 * plan.json          the members and their resolved manifests (deterministic)
 * members/<arm>/s<seed>/   each member's own bundle, listed here by its bundle.json
 * sweep.json         every member by root hash, run id, status (run-specific)
 * slurm/             the Slurm launcher's script, submissions and task logs (run-specific)
 * <aggregation files>     what `aggregate` computed from the verified members (deterministic)
 * ```
 *
 * A run (or `--resume`) reuses every member that completed and verifies, refuses one that was
 * changed, runs the missing and unfinished ones (an unfinished member resumes through `exp
 * --resume`), and aggregates once all are complete. The catalogue builds the kind with the
 * kinds its members may have (lib/cli/kinds.ts): this module does not import the catalogue.
 *
 * @module
 */
import { isAbsolute, join, relative } from "node:path";
import { checkRelPath } from "../bundle/format.ts";
import {
  defineKind,
  type DryRunInfo,
  type ExperimentKind,
  type RunContext,
} from "../experiment/kind.ts";
import { canonicalJson } from "../manifest/canonical.ts";
import { UserError } from "../util/user_error.ts";
import { AGGREGATIONS, type SweepMember } from "./aggregation.ts";
import type { LaunchContext, Launcher, MemberJob } from "./launcher.ts";
import { localLauncher } from "./local_launcher.ts";
import { inspectMember, type MemberState } from "./members.ts";
import "./metrics_table.ts";
import {
  MEMBERS_DIR,
  planJson,
  type PlannedMember,
  planSweep,
  SWEEP_DIR_ENV,
  type SweepPlan,
} from "./plan.ts";
import { SWEEP_EXECUTION_KEYS, type SweepParams, SweepSchema } from "./schema.ts";
import { shellQuote, SLURM_DIR } from "./slurm_script.ts";
import { slurmLauncher } from "./slurm_launcher.ts";

/** The name of the kind. */
export const SWEEP_KIND = "sweep";

/** What the sweep kind is built from. */
export interface SweepKindOptions {
  /** The kinds a member may have; called when needed (the catalogue includes this kind). */
  kinds: () => readonly ExperimentKind[];
  experimentsDir: string;
  projectRoot: string;
}

/** Files of the sweep's own an aggregation may not write. */
const SWEEP_FILES = new Set(["plan.json", "sweep.json"]);

function launcherOf(p: SweepParams): Launcher {
  return p.launcher.kind === "slurm" ? slurmLauncher(p.launcher) : localLauncher(p.workers);
}

/**
 * The `exp` arguments that run a member into `dir`. Members draw no charts of their own: the
 * sweep's aggregation draws its figures, `deno task report` draws any member's, and the PNGs
 * would otherwise be most of a committed table's bytes.
 */
function memberArgs(m: PlannedMember, dir: string, resumable: boolean): string[] {
  return [
    "exp",
    m.ref,
    ...m.sets.flatMap((s) => ["--set", s]),
    "--out",
    dir,
    resumable ? "--resume" : "--force",
    "--no-charts",
  ];
}

/** "2 arms x 3 seeds". */
function size(plan: SweepPlan): string {
  const n = (k: number, what: string) => `${k} ${what}${k === 1 ? "" : "s"}`;
  return `${n(plan.arms.length, "arm")} x ${n(plan.seeds.length, "seed")}`;
}

/** Members in an order where each comes after the member it starts from. */
function dependencyOrder(members: readonly PlannedMember[]): PlannedMember[] {
  const depth = (m: PlannedMember): number => {
    const up = m.after === null ? undefined : members.find((u) => u.id === m.after);
    return up ? 1 + depth(up) : 0;
  };
  return members.map((m, i) => ({ m, i, d: depth(m) })).sort((a, b) => a.d - b.d || a.i - b.i)
    .map((x) => x.m);
}

/** A member the sweep may not use (changed since it ran, another manifest, not a bundle). */
class MemberRefusedError extends UserError {
  override name = "MemberRefusedError";
}

/** Members that failed or were stopped: a resumed sweep runs them again. */
class MembersIncompleteError extends UserError {
  override name = "MembersIncompleteError";
  override readonly resumeHelps = true;
}

/** The sweep's run: see the module doc. */
class SweepRun {
  readonly states = new Map<string, MemberState>();

  constructor(
    readonly ctx: RunContext,
    readonly params: SweepParams,
    readonly plan: SweepPlan,
    readonly opts: SweepKindOptions,
  ) {}

  /** The verified root hash of a completed member, or null. */
  rootHashOf(id: string | null): string | null {
    const s = id === null ? undefined : this.states.get(id);
    return s?.state === "complete" ? s.member.rootHash : null;
  }

  /**
   * Looks at one member's folder again (its upstream inspected first). A member may be used only
   * while the member it started from is complete and is the one it names as its parent.
   */
  async inspect(m: PlannedMember): Promise<MemberState> {
    const up = this.rootHashOf(m.after);
    let state = await inspectMember(this.ctx.bundleDir, m, up);
    if (m.after !== null && up === null && state.state === "complete") {
      state = {
        state: "refused",
        why: `${m.dir} is complete, but member ${m.after}, which it started from, is not ` +
          `(removed or changed since); move ${m.dir} away to run it again from a new ${m.after}`,
      };
    }
    this.states.set(m.id, state);
    return state;
  }

  /**
   * Looks at every member not yet known complete (each is verified once per run of the sweep);
   * a refused one fails the sweep, naming each.
   */
  async inspectAll(members: readonly PlannedMember[]): Promise<void> {
    for (const m of dependencyOrder(members)) {
      if (this.states.get(m.id)?.state !== "complete") await this.inspect(m);
    }
    const refused = members.flatMap((m) => {
      const s = this.states.get(m.id)!;
      return s.state === "refused" ? [`member ${m.id}: ${s.why}`] : [];
    });
    if (refused.length > 0) throw new MemberRefusedError(refused.join("; "));
  }

  job(m: PlannedMember): MemberJob {
    const dir = join(this.ctx.bundleDir, m.dir);
    const kind = this.opts.kinds().find((k) => k.kind === m.manifest.kind);
    return { member: m, dir, args: memberArgs(m, dir, Boolean(kind?.resumable)) };
  }

  launchContext(): LaunchContext {
    const ctx = this.ctx;
    return {
      sweep: ctx.experiment,
      sweepDir: ctx.bundleDir,
      projectRoot: this.opts.projectRoot,
      cwd: Deno.cwd(),
      env: { [SWEEP_DIR_ENV]: ctx.bundleDir },
      signal: ctx.signal,
      log: ctx.log,
      say: (msg) => void Deno.stderr.writeSync(new TextEncoder().encode(msg + "\n")),
      upstreamReady: async (job) => {
        const up = this.plan.members.find((u) => u.id === job.member.after)!;
        if (this.states.get(up.id)?.state === "complete") return true;
        return (await this.inspect(up)).state === "complete";
      },
      writeFile: (rel, data) => ctx.writeFile(rel, data, { deterministic: false }),
      appendJsonl: (rel, value) => ctx.appendJsonl(rel, value, { deterministic: false }),
    };
  }

  /** sweep.json: every member by root hash (run-specific: root hashes cover logs and times). */
  async writeSweepJson(launcher: string): Promise<void> {
    const members = this.plan.members.map((m) => {
      const s = this.states.get(m.id) ?? { state: "missing" };
      const base = { id: m.id, arm: m.arm, seed: m.seed, dir: m.dir, experiment: m.manifest.name };
      if (s.state !== "complete") {
        return {
          ...base,
          status: s.state === "unfinished" ? s.status : s.state,
          ...(s.state === "unfinished" && s.error ? { error: s.error } : {}),
        };
      }
      return {
        ...base,
        status: "completed",
        runId: s.runId,
        rootHash: s.member.rootHash,
        codeVersion: s.codeVersion,
        startedFrom: m.after === null
          ? null
          : { member: m.after, rootHash: this.rootHashOf(m.after) },
      };
    });
    const doc = { format: "selfplay-sweep/1", sweep: this.ctx.experiment, launcher, members };
    await this.ctx.writeFile("sweep.json", JSON.stringify(doc, null, 2) + "\n", {
      deterministic: false,
    });
  }
}

/** Runs the aggregation over the verified members and writes its files. */
async function aggregate(
  ctx: RunContext,
  params: SweepParams,
  plan: SweepPlan,
  members: SweepMember[],
) {
  if (params.aggregate === null) return;
  const { kind, ...rest } = params.aggregate;
  const agg = AGGREGATIONS.get(kind);
  ctx.log(`aggregate: ${kind} (${agg.description})`);
  const out = await agg.run({
    sweep: ctx.experiment,
    arms: plan.arms,
    seeds: plan.seeds,
    members,
    params: rest,
    log: ctx.log,
  });
  for (const f of out.files) {
    const bad = checkRelPath(f.path);
    const top = f.path.split("/")[0];
    if (bad || top === MEMBERS_DIR || top === SLURM_DIR || SWEEP_FILES.has(f.path)) {
      throw new Error(
        `aggregation ${kind}: cannot write "${f.path}"` +
          (bad ? `: the path ${bad}` : `: the sweep's own files and folders are not its to write`),
      );
    }
    await ctx.writeFile(f.path, f.content, { deterministic: f.deterministic ?? true });
  }
  ctx.log(out.summary);
}

/** Builds the `sweep` kind; see the module doc. */
export function sweepKind(opts: SweepKindOptions): ExperimentKind {
  const memberKinds = () => opts.kinds().filter((k) => k.kind !== SWEEP_KIND);
  const planOf = (params: SweepParams, sweepFile: string) =>
    planSweep(params, {
      sweepFile,
      experimentsDir: opts.experimentsDir,
      projectRoot: opts.projectRoot,
      kinds: memberKinds(),
    });
  return defineKind({
    kind: SWEEP_KIND,
    description: "arms x seeds of other experiments, run locally or as Slurm job arrays, " +
      "verified and aggregated by hash",
    schema: SweepSchema,
    resumable: true,
    executionKeys: SWEEP_EXECUTION_KEYS,
    inputs(params) {
      // The arms' manifests (and what they extend) decide the members: they enter the run id.
      // Named from the project root when inside it, so the run id does not depend on where the
      // checkout is.
      const files = new Set<string>();
      for (const m of planOf(params, "sweep").members) {
        for (const f of m.manifest.chain) {
          const rel = relative(opts.projectRoot, f);
          files.add(rel.startsWith("..") || isAbsolute(rel) ? f : rel);
        }
      }
      return [...files].sort();
    },
    async dryRun(params: SweepParams, info: DryRunInfo) {
      const plan = planOf(params, info.experiment);
      const bundleDir = await info.bundleDir();
      const fake = {
        ...info,
        bundleDir,
        sweep: info.experiment,
        sweepDir: bundleDir,
        cwd: Deno.cwd(),
      };
      const jobs = plan.members.map((m) => {
        const dir = join(bundleDir, m.dir);
        const kind = memberKinds().find((k) => k.kind === m.manifest.kind);
        return { member: m, dir, args: memberArgs(m, dir, Boolean(kind?.resumable)) };
      });
      const lines = [
        `sweep ${info.experiment}: ${size(plan)} = ` +
        `${plan.members.length} members; launcher ${params.launcher.kind}; bundle ${bundleDir}`,
      ];
      const w = Math.max(...plan.members.map((m) => m.id.length));
      for (const m of plan.members) {
        lines.push(
          `  ${m.id.padEnd(w)}  ${m.manifest.name} (${m.manifest.kind})` +
            (m.after ? `, starts from ${m.after}` : ""),
        );
      }
      for (const m of plan.members) {
        const args = [m.experiment, ...m.sets.flatMap((s) => ["--set", s])].map(shellQuote);
        lines.push(`member ${m.id}: deno task exp ${args.join(" ")}`);
        lines.push(canonicalJson(m.manifest.resolved, 2));
      }
      lines.push(launcherOf(params).describe(jobs, fake));
      if (params.aggregate) lines.push(`aggregate: ${params.aggregate.kind}`);
      return Promise.resolve(lines.join("\n"));
    },
    async run(ctx: RunContext, params: SweepParams) {
      const plan = planOf(params, ctx.experiment);
      await ctx.writeFile("plan.json", planJson(ctx.experiment, plan), { deterministic: true });
      const launcher = launcherOf(params);
      const run = new SweepRun(ctx, params, plan, opts);
      await run.inspectAll(plan.members);
      const todo = plan.members.filter((m) => run.states.get(m.id)!.state !== "complete");
      const reused = plan.members.length - todo.length;
      ctx.log(
        `sweep: ${plan.members.length} members (${size(plan)}); ${reused} complete and verified${
          reused > 0 ? " (reused)" : ""
        }, ` +
          `${todo.length} to run with the ${launcher.kind} launcher`,
      );
      let ended = new Map<string, string>();
      if (todo.length > 0) {
        ended = await launcher.launch(todo.map((m) => run.job(m)), run.launchContext());
        await run.inspectAll(plan.members);
      }
      // Every completed member is listed by the sweep's bundle, whatever became of the others.
      const complete = plan.members.flatMap((m) => {
        const s = run.states.get(m.id)!;
        return s.state === "complete" ? [s] : [];
      });
      for (const s of complete) await ctx.adoptBundle(join(MEMBERS_DIR, s.member.id));
      await run.writeSweepJson(launcher.kind);
      const codes = new Set(complete.map((s) => s.codeVersion));
      if (codes.size > 1) {
        ctx.log(`warning: the members ran with ${codes.size} code versions (sweep.json)`);
      }
      ctx.throwIfAborted();
      if (complete.length < plan.members.length) {
        const failed = plan.members.filter((m) => run.states.get(m.id)!.state !== "complete");
        const why = failed.map((m) => {
          const s = run.states.get(m.id)!;
          const detail = s.state === "unfinished"
            ? `${s.status}${s.error ? `: ${s.error}` : ""}`
            : s.state;
          return `${m.id} (${detail}; ${ended.get(m.id) ?? "not run"})`;
        });
        throw new MembersIncompleteError(
          `${failed.length} of ${plan.members.length} members did not complete: ` +
            `${why.join("; ")}; a resumed sweep runs only these again (completed ones are reused)`,
        );
      }
      await aggregate(ctx, params, plan, complete.map((s) => s.member));
    },
  });
}
