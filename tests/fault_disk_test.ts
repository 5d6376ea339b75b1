import assert from "node:assert/strict";
import { join } from "node:path";
import { verifyBundle } from "../lib/bundle/verify.ts";
import { loadManifest } from "../lib/manifest/load.ts";
import { runExperiment } from "../lib/runner/run.ts";
import { verifyCheckpoint } from "../lib/train/checkpoint.ts";
import { sftKind } from "../lib/train/sft.ts";
import { sha, writeTinySft } from "./repro_fixtures.ts";

const PAGE = 4096;

function sh(cmd: string, args: string[]): { ok: boolean; err: string } {
  const out = new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).outputSync();
  return { ok: out.success, err: new TextDecoder().decode(out.stderr).trim() };
}

/** A real full disk needs a small tmpfs: only where this process may mount one (root). */
function canMountTmpfs(): boolean {
  const d = Deno.makeTempDirSync({ prefix: "tmpfs-probe-" });
  try {
    if (!sh("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", d]).ok) return false;
    sh("umount", [d]);
    return true;
  } catch {
    return false;
  } finally {
    Deno.removeSync(d, { recursive: true });
  }
}

async function pagesOf(dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const walk = async (rel: string) => {
    for await (const e of Deno.readDir(join(dir, rel))) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) await walk(r);
      else out.set(r, Math.ceil((await Deno.stat(join(dir, r))).size / PAGE) * PAGE);
    }
  };
  await walk("");
  return out;
}

Deno.test({
  name: "a full disk fails the run naming the file, keeps the last checkpoint, and resumes exactly",
  ignore: !canMountTmpfs(),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "fault-disk-" });
    const disk = join(dir, "disk");
    await Deno.mkdir(disk);
    let mounted = false;
    try {
      // Big enough that checkpoints, not charts or logs, decide what fits.
      const file = await writeTinySft(dir, {
        steps: 4,
        checkpointEvery: 2,
        config: { hiddenSize: 128, intermediateSize: 256, numHeads: 4, numKvHeads: 2, headDim: 32 },
      });
      const manifest = loadManifest(file, { experimentsDir: dir, kinds: [sftKind] });
      const common = { manifest, kinds: [sftKind], root: dir, resultsDir: dir };
      const a = await runExperiment({ ...common, outDir: join(dir, "A") });
      assert.equal(a.status, "completed", a.error);

      // Room for the whole bundle except half of the last optimizer state: the step-4
      // checkpoint cannot be written, while what follows a failure (charts, status, index) can.
      const pages = await pagesOf(a.bundleDir);
      const total = [...pages.values()].reduce((x, y) => x + y, 0);
      const opt = pages.get("checkpoints/step-4/optimizer.safetensors")!;
      const size = total - Math.floor(opt / 2 / PAGE) * PAGE;
      const m = sh("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", disk]);
      assert.ok(m.ok, m.err);
      mounted = true;
      const bDir = join(disk, "B");
      const b = await runExperiment({ ...common, outDir: bDir });
      console.log(`tmpfs of ${size} bytes: ${b.status}: ${b.error}`);
      assert.equal(b.status, "failed");
      assert.match(
        b.error ?? "",
        /cannot write bundle file checkpoints\/step-4\/[a-z_.]+: No space left on device/,
      );
      assert.match(b.error ?? "", /the last complete checkpoint is checkpoints\/step-2/);
      const status = JSON.parse(await Deno.readTextFile(join(bDir, "status.json")));
      assert.equal(status.status, "failed");
      await verifyCheckpoint(join(bDir, "checkpoints", "step-2"));
      await assert.rejects(Deno.stat(join(bDir, "checkpoints", "step-4", "SHA256SUMS")));
      // Sealed as failed: every listed file is whole, no temp file is left.
      const v = await verifyBundle(bDir);
      assert.ok(v.ok, v.problems.join("; "));
      assert.ok(!v.index!.files.some((f) => f.path.endsWith(".tmp")));

      // Free space, resume: the uninterrupted run's bytes.
      const grow = sh("mount", ["-o", "remount,size=64m", disk]);
      assert.ok(grow.ok, grow.err);
      const r = await runExperiment({ ...common, outDir: bDir, resume: true });
      assert.equal(r.status, "completed", r.error);
      assert.equal(
        await Deno.readTextFile(join(bDir, "metrics.jsonl")),
        await Deno.readTextFile(join(a.bundleDir, "metrics.jsonl")),
      );
      for (const f of ["model.safetensors", "optimizer.safetensors", "state.json"]) {
        const p = (d: string) => join(d, "checkpoints", "step-4", f);
        assert.equal(await sha(p(bDir)), await sha(p(a.bundleDir)), f);
      }
    } finally {
      if (mounted) sh("umount", [disk]);
      await Deno.remove(dir, { recursive: true });
    }
  },
});
