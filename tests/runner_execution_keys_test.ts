/**
 * A kind's execution keys (how to run, not what: a worker count, a queue) stay out of the run
 * id, so `--resume` continues a run given other values; every other key still makes a new run.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { z } from "zod";
import { defineKind } from "../lib/experiment/kind.ts";
import { loadManifest } from "../lib/manifest/load.ts";
import { plannedTarget, runExperiment } from "../lib/runner/run.ts";

const tmp = () => Deno.makeTempDirSync({ prefix: "runner_execution_keys_test_" });

let failFirst = true;

/** Fails once (the first run), then completes: a run to resume. */
const pooled = defineKind({
  kind: "pooled",
  description: "has an execution key",
  resumable: true,
  executionKeys: ["workers"],
  schema: z.strictObject({
    steps: z.number().int().default(2),
    workers: z.number().int().default(1),
  }),
  async run(ctx, p) {
    if (failFirst) {
      failFirst = false;
      throw new Error("first try fails");
    }
    await ctx.writeFile("out.json", JSON.stringify({ steps: p.steps }), { deterministic: true });
  },
});
const kinds = [pooled];

function manifest(dir: string, sets: string[]) {
  const file = join(dir, "pool.jsonc");
  Deno.writeTextFileSync(file, JSON.stringify({ kind: "pooled", description: "p" }));
  return loadManifest(file, { experimentsDir: dir, kinds, sets });
}

Deno.test("execution keys stay out of the run id; --resume continues with other values", async () => {
  const dir = tmp();
  const results = join(dir, "results");
  const target = (sets: string[]) =>
    plannedTarget({ manifest: manifest(dir, sets), kinds, root: dir, resultsDir: results });
  const one = await target(["workers=1"]);
  assert.equal((await target(["workers=4"])).runId, one.runId);
  assert.notEqual((await target(["steps=3"])).runId, one.runId);

  const first = await runExperiment({
    manifest: manifest(dir, ["workers=1"]),
    kinds,
    root: dir,
    resultsDir: results,
  });
  assert.equal(first.status, "failed");
  assert.equal(first.bundleDir, one.dir);
  // Resumed without --out and with another worker count: the same bundle continues.
  const again = await runExperiment({
    manifest: manifest(dir, ["workers=3"]),
    kinds,
    root: dir,
    resultsDir: results,
    resume: true,
  });
  assert.equal(again.status, "completed", again.error);
  assert.equal(again.bundleDir, first.bundleDir);
  const stored = JSON.parse(await Deno.readTextFile(join(again.bundleDir, "manifest.json")));
  assert.equal(stored.workers, 3, "manifest.json records the values the run went on with");
});
