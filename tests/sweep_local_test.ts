/**
 * A sweep run by the local launcher, end to end through the CLI of a frozen copy of the program:
 * members in a pool of 2 workers (one started from another), an interrupted sweep resumed with
 * its completed members reused after verification, a tampered member refused, the sweep bundle
 * verified (members included) and reproduced file by file.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, snapshotProgram, spawnCli, waitForFile } from "./repro_fixtures.ts";
import { indexOf, writeChainSweep } from "./sweep_fixtures.ts";

Deno.test("local sweep: 2 workers, interrupt, tampered member refused, resume reusing members, verify, repro", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sweep-local-" });
  try {
    const program = await snapshotProgram(dir);
    const manifest = writeChainSweep(dir, "chain");
    const out = join(dir, "chain-bundle");

    // Interrupt the sweep once the first member is complete; the members stop, resumable.
    const child = spawnCli(program, ["exp", manifest, "--out", out]);
    await waitForFile(join(out, "members/g/s0/bundle.json"));
    child.kill("SIGINT");
    // A member that failed (not the test's interrupt) says why, instead of a missing listing below.
    const g0Index = JSON.parse(await Deno.readTextFile(join(out, "members/g/s0/bundle.json")));
    const g0Status = await Deno.readTextFile(join(out, "members/g/s0/status.json")).catch(() => "");
    assert.equal(g0Index.status, "completed", `member g/s0 ended ${g0Index.status}: ${g0Status}`);
    const first = await child.output();
    const firstErr = new TextDecoder().decode(first.stderr);
    assert.equal(first.code, 130, firstErr);
    assert.match(firstErr, /member g\/s0: started \(grpo-mini, seed 0\)/);
    assert.match(firstErr, /member g\/s1: started/, "two workers: g/s1 ran beside g/s0");
    const interrupted = await runCli(program, ["verify", out]);
    assert.equal(interrupted.code, 0, interrupted.stderr + interrupted.stdout);
    assert.match(interrupted.stdout, /status interrupted/);
    const listed = JSON.parse(await Deno.readTextFile(join(out, "bundle.json"))).files
      .map((f: { path: string }) => f.path);
    assert.ok(listed.includes("members/g/s0/bundle.json"), "the completed member is listed");
    const g0 = indexOf(join(out, "members/g/s0")).rootHash;

    // A completed member changed since it ran is refused, and left as it is.
    const metrics = join(out, "members/g/s0/metrics.jsonl");
    const original = await Deno.readFile(metrics);
    const tampered = original.slice();
    tampered[5] ^= 0x01;
    await Deno.writeFile(metrics, tampered);
    const refused = await runCli(program, ["exp", manifest, "--out", out, "--resume"]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(
      refused.stderr,
      /member g\/s0: members\/g\/s0 is a completed member that does not verify \(metrics\.jsonl: sha256 /,
    );
    assert.deepEqual(await Deno.readFile(metrics), tampered, "the refused member is not touched");

    // Restored, the sweep resumes (with another worker count: an execution key) and reuses it.
    await Deno.writeFile(metrics, original);
    const resumed = await runCli(program, [
      "exp",
      manifest,
      "--out",
      out,
      "--resume",
      "--set",
      "workers=1",
    ]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(
      resumed.stderr,
      /sweep: 4 members \(2 arms x 2 seeds\); [1-3] complete and verified \(reused\)/,
    );
    assert.doesNotMatch(resumed.stderr, /member g\/s0: started/, "g/s0 is reused, not rerun");
    assert.equal(indexOf(join(out, "members/g/s0")).rootHash, g0);
    assert.match(resumed.stderr, /metrics-table: 4 members x 3 metrics/);

    const v = await runCli(program, ["verify", out]);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, /status completed/);
    // Members draw no charts of their own (run with --no-charts): `report` draws them on demand.
    const memberFiles = indexOf(join(out, "members/g/s0")).files.map((f: { path: string }) =>
      f.path
    );
    assert.ok(memberFiles.includes("metrics.jsonl"), memberFiles.join(", "));
    assert.ok(!memberFiles.some((f) => f.startsWith("charts/")), memberFiles.join(", "));
    const sweep = JSON.parse(await Deno.readTextFile(join(out, "sweep.json")));
    for (const m of sweep.members) {
      assert.equal(m.status, "completed", m.id);
      assert.equal(m.rootHash, indexOf(join(out, m.dir)).rootHash, `${m.id} named by root hash`);
    }
    const g2 = sweep.members.find((m: { id: string }) => m.id === "g2/s1");
    assert.deepEqual(g2.startedFrom, {
      member: "g/s1",
      rootHash: indexOf(join(out, "members/g/s1")).rootHash,
    });
    const table = JSON.parse(await Deno.readTextFile(join(out, "metrics_table.json")));
    assert.deepEqual(table.rows.map((r: { member: string }) => r.member), [
      "g/s0",
      "g/s1",
      "g2/s0",
      "g2/s1",
    ]);

    // The finished sweep reruns beside itself and matches file by file, its members' included.
    const repro = await runCli(program, ["repro", out]);
    assert.equal(repro.code, 0, repro.stderr + repro.stdout);
    assert.match(repro.stdout, /members\/g2\/s1\/checkpoints\/step-1\/model\.safetensors .* match/);
    assert.match(repro.stdout, /plan\.json .* match/);
    assert.match(repro.stdout, /metrics_table\.json .* match/);
    assert.match(repro.stderr, /REPRODUCED: \d+\/\d+ deterministic files match/);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
