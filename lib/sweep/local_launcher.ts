/**
 * The local launcher: a pool of `workers` child processes, each running one member as an
 * ordinary `exp` of this program. A member that crashes ends only its own process; the others
 * go on. On Linux each child gets its own session (so a terminal's Ctrl-C reaches the sweep
 * alone, which passes one SIGTERM on: the members stop after their current step, resumable) and
 * dies with the sweep if the sweep is killed outright (`setpriv --pdeathsig`), so a resumed
 * sweep never finds a member still being written by an orphan.
 *
 * @module
 */
import { type LaunchContext, type Launcher, memberCommand, type MemberJob } from "./launcher.ts";
import { shellQuote } from "./slurm_script.ts";

/** Runs `cmd` with its own session and parent-death signal where the OS offers them. */
function spawnIsolated(cmd: string[], ctx: LaunchContext): Deno.ChildProcess {
  const opts = {
    cwd: ctx.cwd,
    env: ctx.env,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  } as const;
  if (Deno.build.os === "linux") {
    try {
      return new Deno.Command("setsid", {
        ...opts,
        args: ["setpriv", "--pdeathsig", "TERM", "--", ...cmd],
      }).spawn();
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e; // no util-linux: plain children
    }
  }
  return new Deno.Command(cmd[0], { ...opts, args: cmd.slice(1) }).spawn();
}

/** Copies a child's stderr to ours, each line prefixed with the member's id. */
async function forwardLines(
  stream: ReadableStream<Uint8Array>,
  prefix: string,
  say: (line: string) => void,
): Promise<void> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const lines = (rest + chunk).split(/\r?\n|\r/);
    rest = lines.pop()!;
    for (const line of lines) if (line.trim()) say(`${prefix} ${line}`);
  }
  if (rest.trim()) say(`${prefix} ${rest}`);
}

/** The local launcher with `workers` members at once. */
export function localLauncher(workers: number): Launcher {
  return {
    kind: "local",
    describe(jobs, ctx) {
      const lines = [
        `local: ${workers} worker${workers === 1 ? "" : "s"} (child processes), in ${ctx.cwd}, ` +
        `with SELFPLAY_SWEEP_DIR=${ctx.sweepDir}; each member runs as`,
      ];
      for (const j of jobs) {
        lines.push(
          `  ${memberCommand([Deno.execPath()], ctx.projectRoot, j).map(shellQuote).join(" ")}`,
        );
      }
      return lines.join("\n");
    },
    async launch(jobs, ctx) {
      const ended = new Map<string, string>();
      const here = new Set(jobs.map((j) => j.member.id));
      const pending = [...jobs];
      const running = new Map<string, { child: Deno.ChildProcess; done: Promise<void> }>();
      const stopAll = () => {
        for (const r of running.values()) {
          try {
            r.child.kill("SIGTERM");
          } catch { /* already gone */ }
        }
      };
      ctx.signal.addEventListener("abort", stopAll, { once: true });
      const start = (job: MemberJob) => {
        const id = job.member.id;
        const cmd = memberCommand([Deno.execPath()], ctx.projectRoot, job);
        ctx.log(`member ${id}: started (${job.member.manifest.name}, seed ${job.member.seed})`);
        const child = spawnIsolated(cmd, ctx);
        const done = (async () => {
          await forwardLines(child.stderr, `[${id}]`, ctx.say).catch(() => {});
          const st = await child.status;
          const how = st.signal ? `signal ${st.signal}` : `exit ${st.code}`;
          ended.set(id, how);
          ctx.log(`member ${id}: ended (${how})`);
          running.delete(id);
        })();
        running.set(id, { child, done });
      };
      try {
        while (pending.length > 0 || running.size > 0) {
          // Start what may start: up to `workers`, each after the member it starts from.
          for (let i = 0; i < pending.length && running.size < workers && !ctx.signal.aborted;) {
            const job = pending[i];
            const up = job.member.after;
            if (up !== null && here.has(up) && !ended.has(up)) {
              i++;
              continue;
            }
            pending.splice(i, 1);
            if (up !== null && !(await ctx.upstreamReady(job))) {
              ended.set(job.member.id, `not started: member ${up} did not complete`);
              ctx.log(`member ${job.member.id}: not started, member ${up} did not complete`);
              continue;
            }
            start(job);
          }
          if (running.size === 0) {
            for (const job of pending.splice(0)) {
              ended.set(
                job.member.id,
                ctx.signal.aborted ? "not started: interrupted" : "not started",
              );
            }
            break;
          }
          await Promise.race([...running.values()].map((r) => r.done));
        }
      } finally {
        ctx.signal.removeEventListener("abort", stopAll);
        stopAll();
        await Promise.all([...running.values()].map((r) => r.done));
      }
      return ended;
    },
  };
}
