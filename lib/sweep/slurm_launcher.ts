/**
 * The Slurm launcher: writes slurm/sweep.sbatch (slurm_script.ts), submits one job array per arm
 * with `sbatch` (the arms that start from another with an `aftercorr` dependency), and follows
 * the tasks with `squeue` until every one has left the queue; how each ended comes from `sacct`,
 * or from `scontrol` on a cluster without accounting. Every submission is recorded in
 * slurm/jobs.jsonl, so a sweep resumed after its own process died follows the tasks still queued
 * or running instead of submitting them twice. Ctrl-C cancels the sweep's tasks (`scancel`: the
 * members stop after their current step, resumable); a killed sweep process leaves them running.
 *
 * @module
 */
import { join } from "node:path";
import type { Launcher, MemberJob } from "./launcher.ts";
import type { SlurmParams } from "./schema.ts";
import {
  JOBS_PATH,
  sbatchArgs,
  sbatchScript,
  SCRIPT_PATH,
  shellQuote,
  type Submission,
  taskLogPath,
} from "./slurm_script.ts";

/** Output of a Slurm command. */
interface Out {
  code: number;
  stdout: string;
  stderr: string;
}

async function slurm(cmd: string, args: string[]): Promise<Out> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(
        `slurm launcher: \`${cmd}\` not found; run the sweep on a host with the Slurm client ` +
          `commands (sbatch, squeue, sacct, scancel), or use "launcher": {"kind": "local"}`,
      );
    }
    throw e;
  }
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** `<job>_<index>`: how squeue -r, sacct and scontrol name an array task. */
const taskKey = (job: string, index: number) => `${job}_${index}`;

/** State (and reason) of every queued task of `jobs`, by task key. */
async function queued(jobs: readonly string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (jobs.length === 0) return out;
  for (let attempt = 1;; attempt++) {
    const r = await slurm("squeue", ["-h", "-r", "-o", "%i|%T|%r", "-j", jobs.join(",")]);
    // Jobs Slurm has forgotten make squeue fail this way: none of them is queued.
    if (r.code !== 0 && /invalid job id/i.test(r.stderr)) {
      if (jobs.length === 1) return out;
      for (const j of jobs) for (const [k, v] of await queued([j])) out.set(k, v);
      return out;
    }
    if (r.code === 0) {
      for (const line of r.stdout.split("\n")) {
        const [id, state, reason] = line.trim().split("|");
        if (id && state) out.set(id, reason && reason !== "None" ? `${state} (${reason})` : state);
      }
      return out;
    }
    if (attempt >= 5) throw new Error(`squeue failed: ${r.stderr.trim() || `exit ${r.code}`}`);
    await new Promise((res) => setTimeout(res, 2000 * attempt));
  }
}

/** How each task of `jobs` ended: `sacct`, or `scontrol` where accounting is off. */
async function finalStates(jobs: readonly string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (jobs.length === 0) return out;
  const acct = await slurm("sacct", [
    "-n",
    "-P",
    "-X",
    "-j",
    jobs.join(","),
    "-o",
    "JobID,State,ExitCode",
  ]);
  if (acct.code === 0 && acct.stdout.trim()) {
    for (const line of acct.stdout.split("\n")) {
      const [id, state, exit] = line.trim().split("|");
      if (id && state) out.set(id, `${state.split(" ")[0]} (exit ${exit})`);
    }
    return out;
  }
  for (const job of jobs) {
    const r = await slurm("scontrol", ["-o", "show", "job", job]);
    for (const line of r.stdout.split("\n")) {
      const f = (k: string) => new RegExp(`\\b${k}=(\\S+)`).exec(line)?.[1];
      const [arrayJob, task, state, exit] = [
        f("ArrayJobId"),
        f("ArrayTaskId"),
        f("JobState"),
        f("ExitCode"),
      ];
      if (arrayJob && task && state) out.set(`${arrayJob}_${task}`, `${state} (exit ${exit})`);
    }
  }
  return out;
}

/** One line of slurm/jobs.jsonl. */
interface JobRecord {
  jobId: string;
  arm: string;
  indices: number[];
  members: string[];
  afterJob: string | null;
}

async function readJobRecords(sweepDir: string): Promise<JobRecord[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(join(sweepDir, JOBS_PATH));
  } catch {
    return [];
  }
  const out: JobRecord[] = [];
  for (const line of text.split("\n")) {
    try {
      const r = JSON.parse(line);
      if (typeof r.jobId === "string" && Array.isArray(r.members)) out.push(r);
    } catch { /* a torn last line */ }
  }
  return out;
}

/** Sleeps `ms`, or less when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((res) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      res();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

/** Arms in an order where every arm comes after the arm it starts from. */
function armOrder(jobs: readonly MemberJob[]): string[] {
  const arms = [...new Set(jobs.map((j) => j.member.arm))];
  const upstreamArm = (arm: string) => {
    const a = jobs.find((j) => j.member.arm === arm)?.member.after;
    return a ? a.slice(0, a.lastIndexOf("/")) : null;
  };
  const depth = (arm: string): number => {
    const up = upstreamArm(arm);
    return up && arms.includes(up) ? 1 + depth(up) : 0;
  };
  return arms.map((a, i) => ({ a, i, d: depth(a) })).sort((x, y) => x.d - y.d || x.i - y.i)
    .map((x) => x.a);
}

/** The Slurm launcher configured by the manifest's `launcher` section. */
export function slurmLauncher(p: SlurmParams): Launcher {
  const deno = p.deno.length > 0 ? p.deno : [Deno.execPath()];
  const scriptOf = (jobs: readonly MemberJob[], ctx: {
    sweep: string;
    sweepDir: string;
    projectRoot: string;
    cwd: string;
  }) =>
    sbatchScript(jobs, {
      ...ctx,
      deno,
      setup: p.setup,
      env: { SELFPLAY_SWEEP_DIR: ctx.sweepDir },
    });

  /**
   * Submissions for `jobs`: per arm, grouped by the job their upstream tasks belong to. Lazy: an
   * arm's groups are made after the arms before it were submitted (their job ids known).
   */
  function* plan(
    jobs: readonly MemberJob[],
    upstreamJob: (id: string) => string | null,
  ): Generator<Submission> {
    for (const arm of armOrder(jobs)) {
      const groups = new Map<string | null, number[]>();
      for (const j of jobs.filter((j) => j.member.arm === arm)) {
        const after = j.member.after === null ? null : upstreamJob(j.member.after);
        groups.set(after, [...(groups.get(after) ?? []), j.member.seedIndex]);
      }
      for (const [afterJob, indices] of groups) yield { arm, indices, afterJob };
    }
  }

  return {
    kind: "slurm",
    describe(jobs, ctx) {
      // Shell variables stand for job ids not known before submission.
      const varOf = (arm: string) => `job_${arm.replace(/[^A-Za-z0-9_]/g, "_")}`;
      const subs = [...plan(jobs, (id) => `$${varOf(id.slice(0, id.lastIndexOf("/")))}`)];
      const lines = [
        `slurm: ${ctx.sweepDir}/${SCRIPT_PATH}`,
        scriptOf(jobs, ctx).trimEnd(),
        `slurm: submissions, in order (an arm's members are one job array; the task id is the ` +
        `seed's index):`,
      ];
      for (const s of subs) {
        const args = sbatchArgs(s, p, ctx.sweep, ctx.sweepDir).map((a) =>
          a.startsWith("--dependency=aftercorr:$") ? a : shellQuote(a)
        );
        lines.push(`${varOf(s.arm)}=$(sbatch ${args.join(" ")})`);
      }
      return lines.join("\n");
    },

    async launch(jobs, ctx) {
      const ended = new Map<string, string>();
      // Tasks an earlier run of this sweep submitted that are still queued or running.
      const tracked = new Map<string, { key: string; job: string }>(); // member id -> task
      const previous = await readJobRecords(ctx.sweepDir);
      const stillQueued = await queued([...new Set(previous.map((r) => r.jobId))]);
      for (const r of previous) {
        r.members.forEach((id, i) => {
          const key = taskKey(r.jobId, r.indices[i]);
          if (stillQueued.has(key) && jobs.some((j) => j.member.id === id)) {
            tracked.set(id, { key, job: r.jobId });
            ctx.log(
              `member ${id}: still ${stillQueued.get(key)} as slurm task ${key}; following it`,
            );
          }
        });
      }
      const toSubmit = jobs.filter((j) => !tracked.has(j.member.id));
      if (toSubmit.length > 0) {
        await ctx.writeFile(SCRIPT_PATH, scriptOf(jobs, ctx));
        const submitted: string[] = [];
        const jobOfMember = (id: string) => tracked.get(id)?.job ?? null;
        try {
          for (const s of plan(toSubmit, jobOfMember)) {
            for (const i of s.indices) {
              const log = taskLogPath(s.arm, i);
              const exists = await Deno.stat(join(ctx.sweepDir, log)).then(() => true, () => false);
              if (!exists) await ctx.writeFile(log, "");
            }
            const args = sbatchArgs(s, p, ctx.sweep, ctx.sweepDir);
            const r = await slurm("sbatch", args);
            const jobId = r.stdout.trim().split(";")[0];
            if (r.code !== 0 || !/^\d+$/.test(jobId)) {
              throw new Error(
                `sbatch refused arm ${s.arm}: ${r.stderr.trim() || r.stdout.trim()} ` +
                  `(sbatch ${args.map(shellQuote).join(" ")})`,
              );
            }
            submitted.push(jobId);
            const members = s.indices.map((i) =>
              toSubmit.find((j) => j.member.arm === s.arm && j.member.seedIndex === i)!.member.id
            );
            members.forEach((id, k) =>
              tracked.set(id, { key: taskKey(jobId, s.indices[k]), job: jobId })
            );
            const record: JobRecord = {
              jobId,
              arm: s.arm,
              indices: s.indices,
              members,
              afterJob: s.afterJob,
            };
            await ctx.appendJsonl(JOBS_PATH, { at: new Date().toISOString(), ...record, args });
            ctx.log(
              `slurm: submitted job ${jobId} (arm ${s.arm}, members ${members.join(", ")})` +
                (s.afterJob ? `, each after its seed's task of job ${s.afterJob}` : ""),
            );
          }
        } catch (e) {
          if (submitted.length > 0) await slurm("scancel", submitted);
          throw e;
        }
      }

      // Follow every tracked task until it leaves the queue.
      const jobIds = [...new Set([...tracked.values()].map((t) => t.job))];
      const last = new Map<string, string>();
      let cancelDeadline = 0;
      for (;;) {
        const q = await queued(jobIds);
        let live = 0;
        for (const [id, t] of tracked) {
          const state = q.get(t.key);
          if (state === undefined) continue;
          live++;
          if (last.get(id) !== state) ctx.log(`member ${id}: slurm task ${t.key} ${state}`);
          last.set(id, state);
        }
        if (live === 0) break;
        if (ctx.signal.aborted) {
          if (cancelDeadline === 0) {
            ctx.log(`slurm: cancelling jobs ${jobIds.join(", ")} (interrupted)`);
            await slurm("scancel", jobIds);
            cancelDeadline = Date.now() + 180_000;
          } else if (Date.now() > cancelDeadline) {
            ctx.log(`slurm: tasks still in the queue after cancelling; not waiting longer`);
            break;
          }
        }
        await pause(ctx.signal.aborted ? 2000 : p.pollSeconds * 1000, ctx.signal);
      }
      const finals = await finalStates(jobIds);
      for (const [id, t] of tracked) {
        const how = `slurm task ${t.key} ${finals.get(t.key) ?? "ended"}`;
        ended.set(id, how);
        ctx.log(`member ${id}: ${how}`);
      }
      return ended;
    },
  };
}
