// Exact resume of the RL kinds: a short tiny-LSP run (the lsp kind on a small generated model
// with the tiny world's tokenizer, verifier, prompts and held-out eval) and a short GRPO run
// (whose dataset position crosses an epoch), each killed with SIGKILL after its first checkpoint
// and continued with --resume, write the uninterrupted run's bytes: the same final checkpoint,
// the same metrics.jsonl and samples.jsonl (no line lost or written twice).
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT } from "./cli_helpers.ts";
import { tinyRlModel } from "./rl_fixtures.ts";
import {
  deterministicFiles,
  runCli,
  sha,
  snapshotProgram,
  spawnCli,
  waitForFile,
} from "./repro_fixtures.ts";

const ITERATIONS = 3;
const asset = (name: string) => join(ROOT, "experiments", "assets", "tiny", name);

async function writeManifest(dir: string, kind: "lsp" | "grpo"): Promise<string> {
  const modelDir = await tinyRlModel(dir);
  const lsp = {
    kind: "lsp",
    challenger: { prompt: { file: asset("challenger_prompt.txt") }, maxNewTokens: 6 },
    selfReward: { enabled: true, prompt: { file: asset("judge_prompt.txt") }, maxNewTokens: 6 },
    eval: { kind: "tiny", perCell: 1, maxNewTokens: 4 },
  };
  // 5 tasks, 2 per iteration: iteration 3 reads across the epoch boundary (a new shuffle).
  const grpo = { kind: "grpo", data: { source: "tiny", size: 5 }, eval: { kind: "none" } };
  const manifest = join(dir, `tiny-${kind}-resume.jsonc`);
  await Deno.writeTextFile(
    manifest,
    JSON.stringify({
      description: `three tiny ${kind} iterations (resume check)`,
      seed: 3,
      model: { dir: modelDir },
      iterations: ITERATIONS,
      queries: 2,
      batchSize: 1,
      gradAccum: 2,
      answersPerQuery: 2,
      rowsPerPass: 4,
      solver: { maxNewTokens: 5 },
      reward: { kind: "verifier" },
      // Cosine: the resumed iterations must take the lr of their own iteration.
      optimizer: { lr: 1e-3, schedule: "cosine" },
      samplesEvery: 2,
      checkpointEvery: 1,
      ...(kind === "lsp" ? lsp : grpo),
    }),
  );
  return manifest;
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

async function killAndResume(kind: "lsp" | "grpo") {
  const dir = await Deno.makeTempDir({ prefix: `rl-resume-${kind}-` });
  try {
    const program = await snapshotProgram(dir);
    const manifest = await writeManifest(dir, kind);
    const a = join(dir, "A"), b = join(dir, "B");
    const ra = await runCli(program, ["exp", manifest, "--out", a]);
    assert.equal(ra.code, 0, ra.stderr);

    const child = spawnCli(program, ["exp", manifest, "--out", b]);
    await waitForFile(join(b, "checkpoints", "step-1", "SHA256SUMS"));
    child.kill("SIGKILL");
    const st = await child.output();
    assert.equal(st.signal, "SIGKILL");
    const status = JSON.parse(await Deno.readTextFile(join(b, "status.json")));
    assert.equal(status.status, "running", "the kill must land before the run finished");
    const killedAt = await latestComplete(b);
    console.log(`${kind}: killed after step-1 was saved; latest complete: step-${killedAt}`);
    assert.ok(killedAt >= 1 && killedAt < ITERATIONS);

    const rb = await runCli(program, ["exp", manifest, "--resume", "--out", b]);
    assert.equal(rb.code, 0, rb.stderr);
    assert.match(rb.stderr, /\(resuming\)/);
    assert.match(
      rb.stderr,
      new RegExp(`resuming from .*step-${killedAt} \\(iteration ${killedAt}\\)`),
    );
    for (const f of ["metrics.jsonl", "samples.jsonl"]) {
      assert.equal(
        await Deno.readTextFile(join(b, f)),
        await Deno.readTextFile(join(a, f)),
        f,
      );
    }
    const iters = (await Deno.readTextFile(join(b, "timings.jsonl"))).trim().split("\n")
      .map((l) => JSON.parse(l).iter);
    assert.deepEqual(iters, [1, 2, 3]);
    for (const f of ["model.safetensors", "optimizer.safetensors", "state.json"]) {
      const p = (d: string) => join(d, "checkpoints", `step-${ITERATIONS}`, f);
      assert.equal(await sha(p(b)), await sha(p(a)), f);
    }
    const state = JSON.parse(
      await Deno.readTextFile(join(a, "checkpoints", `step-${ITERATIONS}`, "state.json")),
    );
    assert.equal(state.step, ITERATIONS);
    assert.deepEqual(state.extra, { iteration: ITERATIONS });
    assert.deepEqual(await deterministicFiles(b), await deterministicFiles(a));
    assert.equal((await runCli(program, ["verify", b])).code, 0);
    const resumes = (await Deno.readTextFile(join(b, "resumes.jsonl"))).trim().split("\n");
    assert.equal(resumes.length, 1);
    assert.equal(JSON.parse(resumes[0]).fromCheckpoint, `checkpoints/step-${killedAt}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("rl resume: tiny-lsp killed with SIGKILL after a checkpoint, then --resume, gives the uninterrupted run's bytes", async () => {
  await killAndResume("lsp");
});

Deno.test("rl resume: grpo (dataset position across an epoch) killed and resumed gives the same bytes", async () => {
  await killAndResume("grpo");
});
