/**
 * A real one-node Slurm cluster on localhost for tests: munged, slurmctld and slurmd (Debian's
 * packages) started in the foreground from a generated slurm.conf, with every file (key, socket,
 * state, spool, logs) in a temporary folder and ports of their own, so several can run beside
 * each other and nothing outside the folder changes. `stop()` cancels what is left and ends the
 * three daemons it started, by process id.
 */
import { join } from "node:path";

/** The programs a cluster needs. */
const PROGRAMS = ["munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo"];

/** Why a cluster cannot start here (missing programs, not root), or null when it can. */
export async function slurmUnavailable(): Promise<string | null> {
  const missing: string[] = [];
  for (const p of PROGRAMS) {
    const r = await new Deno.Command("sh", { args: ["-c", `command -v ${p}`], stdout: "null" })
      .output();
    if (!r.success) missing.push(p);
  }
  if (missing.length > 0) {
    return `Slurm is not installed (missing ${missing.join(", ")}; Debian: apt-get install ` +
      `slurmctld slurmd munge slurm-client)`;
  }
  if (Deno.uid() !== 0) return "slurmd must run as root to start jobs (run the tests as root)";
  return null;
}

/** A free TCP port on localhost. */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function until(what: string, ok: () => Promise<boolean>, timeoutMs: number, log: string) {
  const end = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > end) {
      const tail = await Deno.readTextFile(log).catch(() => "");
      throw new Error(`test cluster: ${what} within ${timeoutMs} ms\n${tail.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** A running test cluster. */
export class TestCluster {
  readonly dir: string;
  /** Environment for Slurm commands (and for a sweep that calls them): SLURM_CONF. */
  readonly env: Record<string, string>;
  readonly #daemons: Deno.ChildProcess[] = [];

  private constructor(dir: string) {
    this.dir = dir;
    this.env = { SLURM_CONF: join(dir, "slurm.conf") };
  }

  /** Starts munged, slurmctld and slurmd under `dir` and waits until the node is idle. */
  static async start(dir: string, opts: { cpus: number; memoryMb: number }): Promise<TestCluster> {
    const c = new TestCluster(dir);
    const m = join(dir, "munge");
    for (const d of ["munge", "state", "spool", "log"]) {
      await Deno.mkdir(join(dir, d), { recursive: true, mode: 0o700 });
    }
    const key = join(m, "munge.key");
    await Deno.writeFile(key, crypto.getRandomValues(new Uint8Array(1024)), { mode: 0o400 });
    const socket = join(m, "munge.socket");
    c.#spawn("munged", [
      "-F",
      "-f",
      `--key-file=${key}`,
      `--socket=${socket}`,
      `--pid-file=${join(m, "munged.pid")}`,
      `--log-file=${join(m, "munged.log")}`,
      `--seed-file=${join(m, "munged.seed")}`,
    ], join(dir, "log", "munged.out"));
    await until(
      "munged did not open its socket",
      () => Deno.stat(socket).then(() => true, () => false),
      20_000,
      join(m, "munged.log"),
    );
    const node = Deno.hostname();
    const conf = [
      "ClusterName=selfplaytest",
      `SlurmctldHost=${node}(127.0.0.1)`,
      `SlurmctldPort=${freePort()}`,
      `SlurmdPort=${freePort()}`,
      "SlurmUser=root",
      "AuthType=auth/munge",
      "CredType=cred/munge",
      `AuthInfo=socket=${socket}`,
      `StateSaveLocation=${join(dir, "state")}`,
      `SlurmdSpoolDir=${join(dir, "spool")}`,
      `SlurmctldPidFile=${join(dir, "slurmctld.pid")}`,
      `SlurmdPidFile=${join(dir, "slurmd.pid")}`,
      `SlurmctldLogFile=${join(dir, "log", "slurmctld.log")}`,
      `SlurmdLogFile=${join(dir, "log", "slurmd.log")}`,
      // No cgroups or accounting daemon in a container: plain process tracking, no slurmdbd
      // (so the sweep learns how tasks ended from scontrol, not sacct).
      "ProctrackType=proctrack/linuxproc",
      "TaskPlugin=task/none",
      "JobAcctGatherType=jobacct_gather/none",
      "AccountingStorageType=accounting_storage/none",
      "JobCompType=jobcomp/none",
      "MpiDefault=none",
      "SelectType=select/cons_tres",
      "SelectTypeParameters=CR_CPU_Memory",
      "SchedulerType=sched/backfill",
      "ReturnToService=2",
      "KillWait=5",
      `NodeName=${node} NodeAddr=127.0.0.1 CPUs=${opts.cpus} RealMemory=${opts.memoryMb} ` +
      "State=UNKNOWN",
      "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
    ].join("\n") + "\n";
    await Deno.writeTextFile(c.env.SLURM_CONF, conf);
    c.#spawn("slurmctld", ["-D", "-f", c.env.SLURM_CONF], join(dir, "log", "slurmctld.out"));
    c.#spawn(
      "slurmd",
      ["-D", "-f", c.env.SLURM_CONF, "-N", node],
      join(dir, "log", "slurmd.out"),
    );
    await until(
      "the node did not become idle",
      async () => (await c.run("sinfo", ["-h", "-o", "%T"])).stdout.trim() === "idle",
      60_000,
      join(dir, "log", "slurmctld.log"),
    );
    return c;
  }

  #spawn(cmd: string, args: string[], out: string) {
    const file = Deno.openSync(out, { write: true, create: true, append: true });
    const child = new Deno.Command(cmd, {
      args,
      env: this.env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // Keep the daemons' own output in the cluster folder (read it when a test fails).
    const copy = async (s: ReadableStream<Uint8Array>) => {
      for await (const chunk of s) file.writeSync(chunk);
    };
    Promise.all([copy(child.stdout), copy(child.stderr)]).finally(() => file.close());
    this.#daemons.push(child);
  }

  /** Runs a Slurm command against this cluster. */
  async run(cmd: string, args: string[]): Promise<{ code: number; stdout: string }> {
    const r = await new Deno.Command(cmd, { args, env: this.env, stdout: "piped", stderr: "piped" })
      .output();
    return { code: r.code, stdout: new TextDecoder().decode(r.stdout) };
  }

  /** Cancels every job left, then ends the daemons (slurmd, slurmctld, munged). */
  async stop(): Promise<void> {
    await this.run("scancel", ["--user=root"]).catch(() => {});
    await new Promise((r) => setTimeout(r, 500));
    for (const d of [...this.#daemons].reverse()) {
      try {
        d.kill("SIGTERM");
      } catch { /* already gone */ }
      const ended = await Promise.race([
        d.status.then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), 10_000)),
      ]);
      if (!ended) {
        try {
          d.kill("SIGKILL");
        } catch { /* already gone */ }
        await d.status;
      }
    }
  }
}
