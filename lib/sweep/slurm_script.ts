/**
 * What the Slurm launcher writes and submits, as plain text and argument lists (no Slurm
 * needed to build them, so they are tested anywhere and shown by `--dry-run`).
 *
 * One script, `slurm/sweep.sbatch`, runs any member: its first argument is the arm, the array
 * task id is the seed's index in `seeds`. Each arm is one job array (`sbatch --array=<indices>
 * ... sweep.sbatch <arm>`), with that arm's resources on the command line; an arm that starts
 * from another waits for the corresponding task only (`--dependency=aftercorr:<job>`: seed i of
 * LSP-then-GRPO starts when seed i of LSP succeeded, and is cancelled if it failed).
 *
 * @module
 */
import type { MemberJob } from "./launcher.ts";
import { memberCommand } from "./launcher.ts";
import type { SlurmParams, SlurmResources } from "./schema.ts";

/** Where the launcher's files live inside the sweep's bundle. */
export const SLURM_DIR = "slurm";
/** The script every member's task runs. */
export const SCRIPT_PATH = `${SLURM_DIR}/sweep.sbatch`;
/** One JSON line per submission (job id, arm, array indices, dependency). */
export const JOBS_PATH = `${SLURM_DIR}/jobs.jsonl`;

/** `s` quoted for a POSIX shell (left bare when it is plainly safe). */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_\/.,:=@%+-]+$/.test(s) ? s : `'${s.replaceAll("'", `'"'"'`)}'`;
}

/** The resources of `arm`'s members: the launcher's, overridden by `launcher.arms[arm]`. */
export function resourcesOf(p: SlurmParams, arm: string): SlurmResources {
  const o = p.arms[arm] ?? {};
  return {
    partition: o.partition ?? p.partition,
    account: o.account ?? p.account,
    qos: o.qos ?? p.qos,
    constraint: o.constraint ?? p.constraint,
    gpus: o.gpus ?? p.gpus,
    cpusPerTask: o.cpusPerTask ?? p.cpusPerTask,
    mem: o.mem ?? p.mem,
    time: o.time ?? p.time,
    extraOptions: o.extraOptions ?? p.extraOptions,
  };
}

/** sbatch options for resources (empty values: the cluster's defaults). */
export function resourceOptions(r: SlurmResources): string[] {
  const out: string[] = [];
  if (r.partition) out.push(`--partition=${r.partition}`);
  if (r.account) out.push(`--account=${r.account}`);
  if (r.qos) out.push(`--qos=${r.qos}`);
  if (r.constraint) out.push(`--constraint=${r.constraint}`);
  if (r.gpus > 0) out.push(`--gres=gpu:${r.gpus}`);
  out.push(`--cpus-per-task=${r.cpusPerTask}`);
  if (r.mem) out.push(`--mem=${r.mem}`);
  if (r.time) out.push(`--time=${r.time}`);
  return [...out, ...r.extraOptions];
}

/** What the script needs to know. */
export interface ScriptContext {
  sweep: string;
  /** Absolute path of the sweep's bundle folder. */
  sweepDir: string;
  projectRoot: string;
  /** The folder members run in. */
  cwd: string;
  /** The command that runs Deno on the nodes. */
  deno: readonly string[];
  /** Shell lines to run first. */
  setup: readonly string[];
  /** The environment variable that carries the sweep's folder, and its value. */
  env: Record<string, string>;
}

/**
 * The sbatch script: every member of the sweep (all of them, so any subset can be resubmitted
 * with the same script), chosen by arm and array task id.
 */
export function sbatchScript(jobs: readonly MemberJob[], c: ScriptContext): string {
  const lines = [
    "#!/bin/bash",
    `#SBATCH --job-name=${c.sweep}`,
    "#SBATCH --nodes=1",
    "#SBATCH --ntasks=1",
    "#SBATCH --open-mode=append",
    `# The members of sweep ${c.sweep} (bundle ${c.sweepDir}).`,
    "# Submitted once per arm as a job array: `sbatch --array=<seed indices> <options> " +
    "sweep.sbatch <arm>`;",
    "# the array task id is the seed's index in the manifest's `seeds`. Each task runs one",
    "# member as an ordinary experiment into its bundle folder; --resume continues a member a",
    "# killed or timed-out task left unfinished (kinds that cannot resume start over: --force).",
    "set -euo pipefail",
    `cd ${shellQuote(c.cwd)}`,
    ...Object.entries(c.env).map(([k, v]) => `export ${k}=${shellQuote(v)}`),
    ...c.setup,
    'arm="${1:?usage: sbatch --array=<seed indices> sweep.sbatch <arm>}"',
    'task="${SLURM_ARRAY_TASK_ID:?submit as a job array}"',
    'case "$arm/$task" in',
  ];
  for (const j of jobs) {
    const cmd = memberCommand(c.deno, c.projectRoot, j).map(shellQuote).join(" ");
    lines.push(`  ${shellQuote(`${j.member.arm}/${j.member.seedIndex}`)})`);
    lines.push(`    # member ${j.member.id}`);
    lines.push(`    exec ${cmd} ;;`);
  }
  lines.push('  *) echo "sweep.sbatch: no member $arm with seed index $task" >&2; exit 2 ;;');
  lines.push("esac");
  return lines.join("\n") + "\n";
}

/** One `sbatch` call: one arm's array over some seed indices. */
export interface Submission {
  arm: string;
  /** Seed indices (array task ids), ascending. */
  indices: number[];
  /** The job whose corresponding tasks these wait for (`aftercorr`), or null. */
  afterJob: string | null;
}

/** Slurm's array syntax for indices: `0-2,5`. */
export function arraySpec(indices: readonly number[]): string {
  const sorted = [...indices].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(",");
}

/** The log file of an arm's task `index` (Slurm's `%a` is the array task id). */
export function taskLogPath(arm: string, index: number | "%a"): string {
  return `${SLURM_DIR}/${arm}-${index}.out`;
}

/** The arguments of `sbatch` for a submission. */
export function sbatchArgs(
  s: Submission,
  p: SlurmParams,
  sweepName: string,
  sweepDir: string,
): string[] {
  const throttle = p.maxParallel > 0 ? `%${p.maxParallel}` : "";
  return [
    "--parsable",
    `--job-name=${sweepName}:${s.arm}`,
    `--array=${arraySpec(s.indices)}${throttle}`,
    `--output=${sweepDir}/${taskLogPath(s.arm, "%a")}`,
    ...resourceOptions(resourcesOf(p, s.arm)),
    ...(s.afterJob ? [`--dependency=aftercorr:${s.afterJob}`, "--kill-on-invalid-dep=yes"] : []),
    `${sweepDir}/${SCRIPT_PATH}`,
    s.arm,
  ];
}
