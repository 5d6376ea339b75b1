// Progress on stderr for the commands that can take more than a few seconds (stdout stays the
// result alone).
import assert from "node:assert/strict";
import { join } from "node:path";
import { cli } from "./cli_helpers.ts";

const BASE = "results/tiny-pretrain/6039cb339f555af1/checkpoints/step-1500";

Deno.test("model generate reports loading and generating on stderr, results on stdout", async () => {
  const r = await cli([
    "model",
    "generate",
    "--model",
    BASE,
    "--prompt",
    "reverse: abc",
    "--chat",
    "--max-new-tokens",
    "4",
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^loading .*step-1500 \(2 layers, hidden 64\)\.\.\.$/m);
  assert.match(r.stderr, /^generating 1 sample \(prompt \d+ tokens, up to 4 new\): done in /m);
  for (const line of r.stdout.trim().split("\n")) JSON.parse(line); // stdout: JSON lines only
});

Deno.test("bench-model reports its generate calls as progress", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cli_progress_" });
  try {
    const r = await cli([
      "exp",
      "bench-model",
      "--set",
      "repeats=1",
      "--set",
      "warmup=0",
      "--out",
      join(dir, "b"),
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^bench-model: generating 1\/2 50%/m);
    assert.match(r.stderr, /^bench-model: generating 2\/2 100%/m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
