import assert from "node:assert/strict";
import { join } from "node:path";
import { getGpu } from "../gpu/device.ts";
import { loadManifest } from "../lib/manifest/load.ts";
import { runExperiment } from "../lib/runner/run.ts";
import { verifyCheckpoint } from "../lib/train/checkpoint.ts";
import { sftKind } from "../lib/train/sft.ts";
import { runCli, sha, snapshotProgram, writeTinySft } from "./repro_fixtures.ts";

// Destroys this process's GPU device, so it runs alone in its file and resumes in a new process.
Deno.test("a lost GPU device fails the run clearly, keeps the last checkpoint, resumes exactly", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fault-gpu-" });
  try {
    // The run's code version is the frozen copy's, so the CLI of that copy can resume it.
    const program = await snapshotProgram(dir);
    const file = await writeTinySft(dir, { steps: 6, checkpointEvery: 2 });
    const manifest = loadManifest(file, { experimentsDir: dir, kinds: [sftKind] });
    const common = { manifest, kinds: [sftKind], root: program, resultsDir: dir };
    const a = await runExperiment({ ...common, outDir: join(dir, "A") });
    assert.equal(a.status, "completed", a.error);

    const bDir = join(dir, "B");
    const gpu = await getGpu();
    let lost = false;
    const watch = setInterval(async () => {
      try {
        await Deno.stat(join(bDir, "checkpoints", "step-2", "SHA256SUMS"));
        if (!lost) gpu.device.destroy();
        lost = true;
      } catch { /* not yet */ }
    }, 10);
    const b = await runExperiment({ ...common, outDir: bDir });
    clearInterval(watch);
    console.log(`${b.status}: ${b.error}`);
    assert.ok(lost);
    assert.equal(b.status, "failed");
    assert.match(b.error ?? "", /GPU device was lost/);
    assert.match(b.error ?? "", /the last complete checkpoint is checkpoints\/step-[24]/);
    const status = JSON.parse(await Deno.readTextFile(join(bDir, "status.json")));
    assert.equal(status.status, "failed");
    await verifyCheckpoint(join(bDir, "checkpoints", "step-2"));

    const r = await runCli(program, ["exp", file, "--resume", "--out", bDir]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      await Deno.readTextFile(join(bDir, "metrics.jsonl")),
      await Deno.readTextFile(join(a.bundleDir, "metrics.jsonl")),
    );
    const p = (d: string) => join(d, "checkpoints", "step-6", "model.safetensors");
    assert.equal(await sha(p(bDir)), await sha(p(a.bundleDir)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
