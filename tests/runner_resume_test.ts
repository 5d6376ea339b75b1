import assert from "node:assert/strict";
import { join } from "node:path";
import { z } from "zod";
import { sha256Hex } from "../lib/util/hash_file.ts";
import type { BundleIndex } from "../lib/bundle/format.ts";
import { loadManifest } from "../lib/manifest/load.ts";
import { compareDeterministic, formatComparison } from "../lib/repro/compare.ts";
import { truncateJsonlText } from "../lib/runner/resume.ts";
import { defineKind, type RunContext } from "../lib/experiment/kind.ts";
import { runExperiment } from "../lib/runner/run.ts";

Deno.test("truncateJsonlText keeps lines up to the step, lines without one, drops a torn tail", () => {
  const text = '{"step":1}\n{"iter":2}\n{"note":"x"}\n{"iteration":3}\nnot json\n{"step":4}\n{"st';
  const cut = truncateJsonlText(text, 2);
  assert.equal(cut.text, '{"step":1}\n{"iter":2}\n{"note":"x"}\n');
  assert.equal(cut.dropped, 4);
  assert.deepEqual(truncateJsonlText("", 0), { text: "", dropped: 0 });
});

Deno.test("compareDeterministic names matches, differences, missing and extra files", () => {
  const f = (path: string, sha: string, deterministic = true) => ({
    path,
    size: 1,
    sha256: sha.repeat(64),
    deterministic,
  });
  const idx = (files: ReturnType<typeof f>[]): BundleIndex => ({
    format: "selfplay-bundle/1",
    experiment: "e",
    runId: "r",
    status: "completed",
    files,
    rootHash: "0".repeat(64),
  });
  const rows = compareDeterministic(
    idx([f("a", "1"), f("b", "2"), f("c", "3"), f("log.txt", "4", false)]),
    idx([f("a", "1"), f("b", "9"), f("d", "5"), f("log.txt", "8", false)]),
  );
  assert.deepEqual(rows.map((r) => `${r.path}:${r.verdict}`), [
    "a:match",
    "b:DIFFERS",
    "c:MISSING",
    "d:EXTRA",
  ]);
  const table = formatComparison(rows).split("\n");
  assert.match(table[0], /^file\s+original sha256\s+new sha256\s+verdict$/);
  assert.match(table[3], /^b\s+2{16}\s+9{16}\s+DIFFERS$/);
  assert.match(table[4], /^c\s+3{16}\s+-\s+MISSING$/);
});

/** Set by a test: the ticker throws at this step (the manifest stays the same). */
let crashAt = -1;

/** Checkpoints `{at}` every 2 steps; on resume continues from it and never truncates itself. */
const ticker = defineKind({
  kind: "ticker",
  description: "ticks",
  resumable: true,
  schema: z.strictObject({ steps: z.number().int().default(7) }),
  async run(ctx: RunContext, p) {
    let at = 0;
    if (ctx.resume) {
      for (let s = p.steps; s > 0; s--) {
        try {
          at = JSON.parse(new TextDecoder().decode(
            await ctx.readFile(`checkpoints/step-${s}/state.json`),
          )).step;
          break;
        } catch { /* not there */ }
      }
    }
    for (let i = at + 1; i <= p.steps; i++) {
      await ctx.appendJsonl("metrics.jsonl", { iter: i, v: i * i }, { deterministic: true });
      if (i === crashAt) throw new Error(`crash at ${i}`);
      if (i % 2 === 0) {
        const state = JSON.stringify({ step: i });
        const o = { deterministic: true };
        await ctx.writeFile(`checkpoints/step-${i}/state.json`, state, o);
        await ctx.writeFile(
          `checkpoints/step-${i}/SHA256SUMS`,
          `${sha256Hex(state)}  state.json\n`,
          o,
        );
      }
    }
  },
});

function setup() {
  const root = Deno.makeTempDirSync({ prefix: "repro-resume-" });
  Deno.writeTextFileSync(join(root, "main.ts"), "// v1");
  Deno.writeTextFileSync(join(root, "tick.jsonc"), `{"kind":"ticker","description":"tick"}`);
  const load = (sets: string[] = []) =>
    loadManifest(join(root, "tick.jsonc"), { experimentsDir: root, kinds: [ticker], sets });
  const run = (extra: Partial<Parameters<typeof runExperiment>[0]> = {}) =>
    runExperiment({
      manifest: load(),
      kinds: [ticker],
      root,
      resultsDir: join(root, "results"),
      signal: new AbortController().signal,
      ...extra,
    });
  return { root, load, run };
}

Deno.test("the runner cuts metrics back to the checkpoint for any kind, and says where", async () => {
  const s = setup();
  try {
    const a = await s.run({ outDir: join(s.root, "a") });
    assert.equal(a.status, "completed", a.error);
    crashAt = 5;
    const b1 = await s.run({ outDir: join(s.root, "b") });
    crashAt = -1;
    assert.equal(b1.status, "failed");
    assert.match(b1.error!, /crash at 5; the last complete checkpoint is checkpoints\/step-4/);
    const b2 = await s.run({ outDir: join(s.root, "b"), resume: true });
    assert.equal(b2.status, "completed", b2.error);
    assert.equal(
      await Deno.readTextFile(join(s.root, "b", "metrics.jsonl")),
      await Deno.readTextFile(join(s.root, "a", "metrics.jsonl")),
    );
    const log = await Deno.readTextFile(join(s.root, "b", "log.txt"));
    assert.match(log, /metrics\.jsonl cut back to step 4 \(1 later lines dropped\)/);
  } finally {
    await Deno.remove(s.root, { recursive: true });
  }
});

Deno.test("--resume finds the unfinished run after a code change and refuses unless allowed", async () => {
  const s = setup();
  try {
    crashAt = 3;
    const b1 = await s.run();
    crashAt = -1;
    assert.equal(b1.status, "failed");
    Deno.writeTextFileSync(join(s.root, "main.ts"), "// v2");
    await assert.rejects(
      s.run({ resume: true }),
      /cannot resume .*latest unfinished run.*the code version .* changed.*--allow-changed-code/,
    );
    await assert.rejects(
      s.run({ resume: true, allowChangedCode: true, manifest: s.load(["steps=9"]) }),
      /the resolved manifest \(steps\)/,
    );
    const b2 = await s.run({ resume: true, allowChangedCode: true });
    assert.equal(b2.status, "completed", b2.error);
    assert.equal(b2.bundleDir, b1.bundleDir);
    assert.equal(b2.runId, b1.runId);
    const rec = JSON.parse(await Deno.readTextFile(join(b2.bundleDir, "resumes.jsonl")));
    assert.equal(rec.fromCheckpoint, "checkpoints/step-2");
    assert.notEqual(rec.changedCode.from, rec.changedCode.to);
    // Without --resume a changed code version is simply a new run.
    const c = await s.run();
    assert.equal(c.status, "completed");
    assert.notEqual(c.runId, b1.runId);
  } finally {
    await Deno.remove(s.root, { recursive: true });
  }
});
