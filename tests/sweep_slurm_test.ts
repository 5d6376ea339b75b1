/**
 * A sweep through a real Slurm: a one-node cluster on localhost (tests/slurm_cluster.ts) runs a
 * sweep of two arms (the second started from the first) over two seeds as job arrays; one
 * member's task is killed mid-run, its dependent is cancelled by Slurm, and a re-run of the
 * sweep resubmits exactly those two (the killed one resumes from its checkpoint); that sweep
 * process is killed in turn, and a third run follows the tasks still on the cluster instead of
 * submitting them again, then aggregates. Without Slurm (or root) the test says so and is
 * skipped; in CI (CI=true) it runs.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, snapshotProgram, waitForFile } from "./repro_fixtures.ts";
import { slurmUnavailable, TestCluster } from "./slurm_cluster.ts";
import { indexOf, writeGrpoMini } from "./sweep_fixtures.ts";

const why = await slurmUnavailable();
const inCi = Deno.env.get("CI") === "true";
if (why && !inCi) console.log(`sweep_slurm_test: skipped: ${why}`);

/** The process id of the member writing into `memberDir` (the task's `deno ... exp`). */
async function memberPid(memberDir: string): Promise<number> {
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const cmd = await Deno.readTextFile(`/proc/${e.name}/cmdline`).catch(() => "");
    const args = cmd.split("\0");
    if (args.includes("exp") && args.includes(memberDir)) return Number(e.name);
  }
  throw new Error(`no process runs the member in ${memberDir}`);
}

/** Runs the frozen program's CLI with the cluster's environment. */
async function cliWith(program: string, env: Record<string, string>, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(program, "main.ts"), ...args],
    cwd: program,
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  const clean = (b: Uint8Array) =>
    dec.decode(b).split("\n").filter((l) => !l.includes("XDG_RUNTIME_DIR")).join("\n");
  return { code: out.code, stdout: clean(out.stdout), stderr: clean(out.stderr) };
}

Deno.test({
  name: "slurm sweep: job arrays, a killed member resubmitted and resumed, aggregated, verified",
  ignore: why !== null && !inCi,
  async fn() {
    if (why) throw new Error(`CI must run the Slurm test, but ${why}`);
    const dir = await Deno.makeTempDir({ prefix: "sweep-slurm-" });
    const cluster = await TestCluster.start(join(dir, "cluster"), { cpus: 2, memoryMb: 4000 });
    try {
      const program = await snapshotProgram(dir);
      const base = writeGrpoMini(dir);
      const long = join(dir, "grpo-long.jsonc");
      await Deno.writeTextFile(
        long,
        JSON.stringify({
          extends: base,
          description: "GRPO from the tiny base, checkpointed (slurm fixture)",
          iterations: 8,
          checkpointEvery: 2,
        }),
      );
      const manifest = join(dir, "slurm-chain.jsonc");
      await Deno.writeTextFile(
        manifest,
        JSON.stringify({
          kind: "sweep",
          description: "a GRPO arm and a GRPO-after-GRPO arm on Slurm (test)",
          seeds: [0, 1],
          arms: [{ name: "a", experiment: long }, { name: "b", experiment: base, after: "a" }],
          launcher: { kind: "slurm", cpusPerTask: 1, mem: "1G", time: "10:00", pollSeconds: 1 },
          aggregate: { kind: "metrics-table", keys: ["iter", "solverReward.mean"] },
        }),
      );
      const out = join(dir, "bundle");

      // Round 1: kill member a/s1's task once its first checkpoint is complete.
      const round1 = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", join(program, "main.ts"), "exp", manifest, "--out", out],
        cwd: program,
        env: { NO_COLOR: "1", ...cluster.env },
        stdout: "null",
        stderr: "piped",
      }).spawn();
      await waitForFile(join(out, "members/a/s1/checkpoints/step-2/SHA256SUMS"), 180_000);
      const queue = await cluster.run("squeue", ["-h", "-r", "-o", "%i %j %T"]);
      assert.match(queue.stdout, /_1 slurm-chain:a RUNNING/, "a/s1 runs on the cluster");
      // As a node would lose it: SIGKILL to the member's process, no time to mark anything.
      const pid = await memberPid(join(out, "members/a/s1"));
      Deno.kill(pid, "SIGKILL");
      const r1 = await round1.output();
      const err1 = new TextDecoder().decode(r1.stderr);
      console.log(
        err1.split("\n").filter((l) => !l.startsWith("[") && !l.includes("XDG")).join("\n"),
      );
      assert.equal(r1.code, 1, err1);
      assert.match(err1, /slurm: submitted job \d+ \(arm a, members a\/s0, a\/s1\)/);
      assert.match(
        err1,
        /slurm: submitted job \d+ \(arm b, members b\/s0, b\/s1\), each after its seed's task of job \d+/,
      );
      assert.match(err1, /2 of 4 members did not complete: a\/s1 \(running; slurm task \d+_1 /);
      assert.match(err1, /b\/s1 \(missing; slurm task \d+_1 (CANCELLED|PENDING)/);
      const done0 = indexOf(join(out, "members/a/s0")).rootHash;

      // Round 2: only the killed member and its dependent are submitted again. The sweep's
      // own process is killed once it submitted them: the tasks go on on the cluster.
      const round2 = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", join(program, "main.ts"), "exp", manifest, "--out", out, "--resume"],
        cwd: program,
        env: { NO_COLOR: "1", ...cluster.env },
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const jobsFile = join(out, "slurm/jobs.jsonl");
      const submissions = async () =>
        (await Deno.readTextFile(jobsFile)).trim().split("\n").map((l) => JSON.parse(l));
      for (let t = 0; (await submissions()).length < 4; t++) {
        assert.ok(t < 1200, "round 2 submits two arrays");
        await new Promise((r) => setTimeout(r, 100));
      }
      round2.kill("SIGKILL");
      const err2 = new TextDecoder().decode((await round2.output()).stderr);
      console.log(err2.split("\n").filter((l) => !l.startsWith("[")).join("\n"));
      console.log("(the sweep process was killed here; its tasks go on on the cluster)\n");
      assert.match(err2, /2 complete and verified \(reused\), 2 to run with the slurm launcher/);
      assert.match(err2, /slurm: submitted job \d+ \(arm a, members a\/s1\)\n/);
      assert.match(err2, /slurm: submitted job \d+ \(arm b, members b\/s1\), each after/);
      const [ra, rb] = (await submissions()).slice(2);
      assert.deepEqual([ra.members, rb.members, rb.afterJob], [["a/s1"], ["b/s1"], ra.jobId]);

      // Round 3: a resumed sweep follows the tasks still queued instead of submitting them again.
      const r3 = await cliWith(program, cluster.env, ["exp", manifest, "--out", out, "--resume"]);
      console.log(r3.stderr.split("\n").filter((l) => !l.startsWith("[")).join("\n"));
      assert.equal(r3.code, 0, r3.stderr);
      assert.doesNotMatch(r3.stderr, /slurm: submitted/);
      assert.match(
        r3.stderr,
        new RegExp(`member b/s1: still .* as slurm task ${rb.jobId}_1; following it`),
      );
      assert.equal((await submissions()).length, 4);
      assert.equal(indexOf(join(out, "members/a/s0")).rootHash, done0, "a/s0 was not rerun");
      const resumes = await Deno.readTextFile(join(out, "members/a/s1/resumes.jsonl"));
      assert.match(resumes, /"fromCheckpoint":"checkpoints\/step-\d+"/, "a/s1 resumed");
      const script = await Deno.readTextFile(join(out, "slurm/sweep.sbatch"));
      assert.match(
        script,
        /exec .* exp .*grpo-long\.jsonc --set seed=1 --out .*members\/a\/s1 --resume/,
      );
      const table = JSON.parse(await Deno.readTextFile(join(out, "metrics_table.json")));
      assert.deepEqual(table.rows.map((r: { member: string }) => r.member), [
        "a/s0",
        "a/s1",
        "b/s0",
        "b/s1",
      ]);
      assert.deepEqual(table.rows.map((r: { values: { iter: number } }) => r.values.iter), [
        8,
        8,
        1,
        1,
      ]);
      const v = await runCli(program, ["verify", out]);
      assert.equal(v.code, 0, v.stderr);
      console.log(v.stdout.trim());
    } finally {
      await cluster.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
