/**
 * How a sweep's members get run: the one interface every launcher implements. The sweep decides
 * which members need a run (missing, unfinished) and how each is run (an ordinary `exp` command
 * into its bundle folder); a launcher runs those commands somewhere (child processes here, Slurm
 * job arrays on a cluster; a Kubernetes Indexed Job launcher would be a third), starting a member
 * that starts from another only after that one completed, and reports how each ended. The sweep
 * then reads the members' bundles, which are the truth about every member whatever the launcher
 * says.
 *
 * @module
 */
import type { PlannedMember } from "./plan.ts";

/** One member to run. */
export interface MemberJob {
  member: PlannedMember;
  /** Absolute path of its bundle folder. */
  dir: string;
  /**
   * The program's arguments that run it, after `deno run -A <root>/main.ts`: `exp <ref> --set
   * ... --out <dir>` and `--resume` (or `--force` for a kind that cannot resume).
   */
  args: string[];
}

/** What a launcher may use while it runs members. */
export interface LaunchContext {
  /** The sweep's experiment name. */
  sweep: string;
  /** Absolute path of the sweep's bundle folder. */
  sweepDir: string;
  /** Absolute path of the project root (main.ts is there). */
  projectRoot: string;
  /** The folder members run in (where the sweep was started; relative paths resolve there). */
  cwd: string;
  /** Environment variables every member gets (the sweep's folder: plan.ts SWEEP_DIR_ENV). */
  env: Record<string, string>;
  /** Aborted on Ctrl-C / SIGTERM: stop the members (they become resumable), then return. */
  signal: AbortSignal;
  /** A line for the sweep's log (stderr and log.txt). */
  log(msg: string): void;
  /** A line to stderr only (members' own output: their log.txt has it). */
  say(msg: string): void;
  /**
   * Before a member that starts from another runs: true when that member completed and the
   * sweep verified it (false: it failed, so this one cannot start).
   */
  upstreamReady(job: MemberJob): Promise<boolean>;
  /** Writes a run-specific file of the sweep's bundle (scripts, job records). */
  writeFile(rel: string, data: string): Promise<void>;
  /** Appends a run-specific JSON line to a file of the sweep's bundle. */
  appendJsonl(rel: string, value: unknown): Promise<void>;
}

/** What `--dry-run` shows of a launcher: where it would run what. */
export interface DescribeContext {
  sweep: string;
  sweepDir: string;
  projectRoot: string;
  cwd: string;
}

/** Runs members. */
export interface Launcher {
  /** The manifest's `launcher.kind`. */
  readonly kind: string;
  /**
   * Runs `jobs` (every one whose upstream is not among them has completed) until each has ended;
   * returns, per member id, how it ended in words ("exit 0", "slurm FAILED", "not started: ...").
   * A member's own failure is not an error of the launcher's.
   */
  launch(jobs: readonly MemberJob[], ctx: LaunchContext): Promise<Map<string, string>>;
  /** What it would run, for `--dry-run` (commands, scripts). */
  describe(jobs: readonly MemberJob[], ctx: DescribeContext): string;
}

/** The command line that runs a job with the Deno `deno` (a command and its leading words). */
export function memberCommand(deno: readonly string[], root: string, job: MemberJob): string[] {
  return [...deno, "run", "-A", `${root}/main.ts`, ...job.args];
}
