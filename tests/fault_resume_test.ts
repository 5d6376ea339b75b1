import assert from "node:assert/strict";
import { join } from "node:path";
import {
  deterministicFiles,
  runCli,
  sha,
  snapshotProgram,
  spawnCli,
  waitForFile,
  writeTinySft,
} from "./repro_fixtures.ts";

const STEPS = 10;

async function copyDir(from: string, to: string) {
  const out = await new Deno.Command("cp", { args: ["-a", from, to] }).output();
  assert.ok(out.success, `cp -a ${from} ${to}`);
}

async function latestComplete(bundle: string): Promise<number> {
  let best = -1;
  for await (const e of Deno.readDir(join(bundle, "checkpoints"))) {
    const m = /^step-(\d+)$/.exec(e.name);
    try {
      await Deno.stat(join(bundle, "checkpoints", e.name, "SHA256SUMS"));
      if (m) best = Math.max(best, Number(m[1]));
    } catch { /* incomplete */ }
  }
  return best;
}

Deno.test("SIGKILL at a random point, then --resume, gives the uninterrupted run's bytes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fault-resume-" });
  try {
    const program = await snapshotProgram(dir);
    const manifest = await writeTinySft(dir, { steps: STEPS, checkpointEvery: 2 });
    const a = join(dir, "A"), b = join(dir, "B");
    const ra = await runCli(program, ["exp", manifest, "--out", a]);
    assert.equal(ra.code, 0, ra.stderr);

    // Kill -9 a random moment after the first checkpoint is complete.
    const child = spawnCli(program, ["exp", manifest, "--out", b]);
    await waitForFile(join(b, "checkpoints", "step-2", "SHA256SUMS"));
    const delay = Math.floor(Math.random() * 1200);
    await new Promise((r) => setTimeout(r, delay));
    child.kill("SIGKILL");
    const st = await child.output();
    assert.equal(st.signal, "SIGKILL");
    const status = JSON.parse(await Deno.readTextFile(join(b, "status.json")));
    const killedAt = await latestComplete(b);
    console.log(`killed ${delay} ms after step-2 was saved; latest complete: step-${killedAt}`);
    assert.equal(status.status, "running", "the kill must land before the run finished");
    assert.ok(killedAt < STEPS);
    await copyDir(b, join(dir, "B-corrupt"));
    await copyDir(b, join(dir, "B-code"));

    // Resume: same final checkpoint, same metrics (no line twice), same deterministic files.
    const rb = await runCli(program, ["exp", manifest, "--resume", "--out", b]);
    assert.equal(rb.code, 0, rb.stderr);
    assert.match(rb.stderr, /\(resuming\)/);
    assert.equal(
      await Deno.readTextFile(join(b, "metrics.jsonl")),
      await Deno.readTextFile(join(a, "metrics.jsonl")),
    );
    for (const f of ["model.safetensors", "optimizer.safetensors", "state.json"]) {
      const p = (d: string) => join(d, "checkpoints", `step-${STEPS}`, f);
      assert.equal(await sha(p(b)), await sha(p(a)), f);
    }
    assert.deepEqual(await deterministicFiles(b), await deterministicFiles(a));
    assert.equal((await runCli(program, ["verify", b])).code, 0);
    const resumes = (await Deno.readTextFile(join(b, "resumes.jsonl"))).trim().split("\n");
    assert.equal(resumes.length, 1);
    assert.equal(JSON.parse(resumes[0]).fromCheckpoint, `checkpoints/step-${killedAt}`);

    // A flipped byte in the latest checkpoint is caught on resume, naming the file.
    const c = join(dir, "B-corrupt");
    const weights = join(c, "checkpoints", `step-${killedAt}`, "model.safetensors");
    const bytes = await Deno.readFile(weights);
    bytes[bytes.length >> 1] ^= 0x01;
    await Deno.writeFile(weights, bytes);
    const rc = await runCli(program, ["exp", manifest, "--resume", "--out", c]);
    assert.equal(rc.code, 1);
    assert.match(
      rc.stderr,
      new RegExp(
        `corrupt: .*step-${killedAt}/model\\.safetensors: sha256 [0-9a-f]{64} does not match ` +
          `SHA256SUMS`,
      ),
    );
    assert.equal(JSON.parse(await Deno.readTextFile(join(c, "status.json"))).status, "running");

    // Other code: refused unless --allow-changed-code; a changed manifest is refused regardless.
    const d = join(dir, "B-code");
    await Deno.writeTextFile(join(program, "lib/repro/claim.ts"), "// edited\n", { append: true });
    const r1 = await runCli(program, ["exp", manifest, "--resume", "--out", d]);
    assert.equal(r1.code, 1);
    assert.match(
      r1.stderr,
      /cannot resume .*the code version \([0-9a-f]{12} then, [0-9a-f]{12} now\)/,
    );
    assert.match(r1.stderr, /--allow-changed-code/);
    const r2 = await runCli(program, [
      "exp",
      manifest,
      "--resume",
      "--allow-changed-code",
      "--set",
      "steps=12",
      "--out",
      d,
    ]);
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /the resolved manifest \(steps\)/);
    const r3 = await runCli(program, [
      "exp",
      manifest,
      "--resume",
      "--allow-changed-code",
      "--out",
      d,
    ]);
    assert.equal(r3.code, 0, r3.stderr);
    assert.equal(
      await Deno.readTextFile(join(d, "metrics.jsonl")),
      await Deno.readTextFile(join(a, "metrics.jsonl")),
    );
    const rec = JSON.parse((await Deno.readTextFile(join(d, "resumes.jsonl"))).trim());
    assert.ok(rec.changedCode && rec.changedCode.from !== rec.changedCode.to);
    const index = JSON.parse(await Deno.readTextFile(join(d, "bundle.json")));
    assert.equal(index.runId, JSON.parse(await Deno.readTextFile(join(a, "bundle.json"))).runId);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
