/**
 * The llama3b-lsp memory plan (lib/rl/memory_plan.ts) fits an 80 GB card with at least 5 GB to
 * spare, and `exp --dry-run` prints it on stderr while stdout stays the resolved manifest.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadManifest } from "../lib/manifest/load.ts";
import { KINDS } from "../lib/cli/kinds.ts";
import { planPeak, rlMemoryPlan, type RlPlanParams } from "../lib/rl/memory_plan.ts";
import { computeCopyBytes, planTotal } from "../lib/model/memory_plan.ts";
import { resolveModelConfig } from "../lib/model/config_field.ts";
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

Deno.test("precision bf16 adds the policy's packed compute copies to the persistent plan", async () => {
  const params = load("llama3b-lsp").params as unknown as RlPlanParams;
  const f32 = await rlMemoryPlan(params);
  const bf16 = await rlMemoryPlan({ ...params, precision: { weights: "bf16" } });
  const line = bf16.persistent.find((l) => l.what === "policy compute copies (packed bf16)");
  const c = await resolveModelConfig(
    "experiments/assets/lsp/llama-3.2-3b-instruct-config.json",
    "config",
  );
  assert.equal(line?.bytes, computeCopyBytes(c, "bf16"));
  // 2 bytes per matrix parameter (the 3B's tied embedding once).
  assert.ok(Math.abs(line!.bytes - 6.43e9) < 0.01e9, `${line!.bytes}`);
  assert.equal(planTotal(bf16.persistent) - planTotal(f32.persistent), line!.bytes);
  assert.ok(!f32.persistent.some((l) => l.what.includes("compute copies")));
});

Deno.test("exp --dry-run prints the memory plan on stderr, the manifest alone on stdout", async () => {
  const r = await cli(["exp", "llama3b-lsp", "--dry-run"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).kind, "lsp");
  assert.match(r.stderr, /GPU memory plan/);
  assert.match(r.stderr, /peak: \d+\.\d\d GB = persistent \+ /);
  assert.match(r.stderr, /budget 80\.00 GB: fits/);
});
