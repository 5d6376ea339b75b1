/**
 * The `precision` section: optional with no default object (a manifest without it resolves
 * exactly as before, so `repro` of older bundles is unaffected), `weights` "f32" or "bf16" in
 * every kind that trains or benchmarks a policy, and a clear error naming the file and field.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadManifest } from "../lib/manifest/load.ts";
import { KINDS } from "../lib/cli/kinds.ts";
import { ROOT } from "./cli_helpers.ts";

const load = (name: string, sets: string[] = []) =>
  loadManifest(name, { experimentsDir: join(ROOT, "experiments"), kinds: KINDS, sets });

const KINDS_WITH_PRECISION = [
  "sft-tiny", // sft
  "tiny-pretrain",
  "tiny-lsp",
  "tiny-grpo",
  "bench-model",
  "bench-train",
];

Deno.test("precision is absent unless given, and takes f32 or bf16 in every training kind", () => {
  for (const name of KINDS_WITH_PRECISION) {
    assert.ok(!("precision" in load(name).resolved), `${name}: no default precision object`);
    for (const w of ["f32", "bf16"]) {
      const m = load(name, [`precision.weights=${w}`]);
      assert.deepEqual(m.resolved.precision, { weights: w }, name);
    }
    assert.deepEqual(load(name, ["precision={}"]).resolved.precision, { weights: "f32" }, name);
  }
});

Deno.test("a bad precision names the file and field", () => {
  assert.throws(
    () => load("tiny-grpo", ["precision.weights=fp16"]),
    /experiments\/tiny-grpo\.jsonc \(with --set precision\.weights=fp16\): "precision\.weights": must be "f32" or "bf16" .*got "fp16"/,
  );
  assert.throws(() => load("sft-tiny", ['precision={"weights":"bf16","x":1}']), /precision/);
});
