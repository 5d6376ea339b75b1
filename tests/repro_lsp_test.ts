// Two runs of a short tiny-LSP variant (the lsp kind on a small generated model with the tiny
// world's tokenizer, verifier, prompts and held-out eval) give identical deterministic outputs.
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT } from "./cli_helpers.ts";
import { tinyRlModel } from "./rl_fixtures.ts";
import { deterministicFiles, runCli, snapshotProgram } from "./repro_fixtures.ts";

const asset = (name: string) => join(ROOT, "experiments", "assets", "tiny", name);

Deno.test("repro: two runs of a short tiny-lsp match in metrics, samples, eval and checkpoints", async () => {
  const dir = await Deno.makeTempDir({ prefix: "repro-lsp-" });
  try {
    const program = await snapshotProgram(dir);
    const modelDir = await tinyRlModel(dir);
    const manifest = join(dir, "tiny-lsp-short.jsonc");
    await Deno.writeTextFile(
      manifest,
      JSON.stringify({
        kind: "lsp",
        description: "two tiny LSP iterations (reproducibility check)",
        seed: 3,
        model: { dir: modelDir },
        iterations: 2,
        queries: 2,
        batchSize: 1,
        gradAccum: 2,
        answersPerQuery: 2,
        rowsPerPass: 4,
        challenger: { prompt: { file: asset("challenger_prompt.txt") }, maxNewTokens: 6 },
        solver: { maxNewTokens: 5 },
        selfReward: {
          enabled: true,
          prompt: { file: asset("judge_prompt.txt") },
          maxNewTokens: 6,
        },
        reward: { kind: "verifier" },
        optimizer: { lr: 1e-3 },
        samplesEvery: 1,
        checkpointEvery: 1,
        eval: { kind: "tiny", perCell: 1, maxNewTokens: 4 },
      }),
    );
    const a = join(dir, "A");
    const run = await runCli(program, ["exp", manifest, "--out", a]);
    assert.equal(run.code, 0, run.stderr);
    const r = await runCli(program, ["repro", a]);
    console.log(r.stdout);
    assert.equal(r.code, 0, r.stderr);
    const claimed = Object.keys(await deterministicFiles(a));
    for (const f of ["metrics.jsonl", "samples.jsonl", "eval.json"]) {
      assert.ok(claimed.includes(f), `${f} is claimed deterministic`);
      assert.match(
        r.stdout,
        new RegExp(`^${f.replace(".", "\\.")}\\s+(\\S+)\\s+\\1\\s+match$`, "m"),
      );
    }
    assert.ok(claimed.some((f) => f.startsWith("checkpoints/step-2/")));
    assert.deepEqual(await deterministicFiles(join(dir, "A-repro-1")), await deterministicFiles(a));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
