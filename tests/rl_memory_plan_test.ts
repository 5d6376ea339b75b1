/**
 * The llama3b-lsp memory plan (lib/rl/memory_plan.ts) fits an 80 GB card with at least 5 GB to
 * spare, and `exp --dry-run` prints it on stderr while stdout stays the resolved manifest.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadManifest } from "../lib/manifest/load.ts";
import { KINDS } from "../lib/cli/kinds.ts";
import { planPeak, rlMemoryPlan, type RlPlanParams } from "../lib/rl/memory_plan.ts";
import { planTotal } from "../lib/model/memory_plan.ts";
import { cli, ROOT } from "./cli_helpers.ts";

const load = (name: string) =>
  loadManifest(name, { experimentsDir: join(ROOT, "experiments"), kinds: KINDS });

Deno.test("llama3b-lsp and llama3b-grpo plan under 75 GB (80 GB with 5 GB to spare)", async () => {
  for (const name of ["llama3b-lsp", "llama3b-grpo"]) {
    const m = load(name);
    const plan = await rlMemoryPlan(m.params as unknown as RlPlanParams);
    // Policy f32 + gradients + m + v (16 B/param) and two 16-bit frozen copies (DESIGN.md).
    const persistent = planTotal(plan.persistent);
    assert.ok(Math.abs(persistent - 64.26e9) < 0.01e9, `${name}: persistent ${persistent}`);
    const peak = planPeak(plan);
    assert.ok(peak <= 75e9, `${name}: peak ${peak / 1e9} GB`);
    const names = plan.phases.map((p) => p.name).join("; ");
    for (const phase of ["solver generation", "training step", "reward scoring"]) {
      assert.match(names, new RegExp(phase), name);
    }
  }
});

Deno.test("exp --dry-run prints the memory plan on stderr, the manifest alone on stdout", async () => {
  const r = await cli(["exp", "llama3b-lsp", "--dry-run"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).kind, "lsp");
  assert.match(r.stderr, /GPU memory plan/);
  assert.match(r.stderr, /peak: \d+\.\d\d GB = persistent \+ /);
  assert.match(r.stderr, /budget 80\.00 GB: fits/);
});
