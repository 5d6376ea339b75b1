// End to end: a two-iteration tiny LSP run (and LSP-Zero, GRPO) through the runner on a small
// generated model with the tiny world's tokenizer, verifier and judge prompt; and the errors a
// user sees when the base bundle or the Llama weights are missing.
import { assert, assertEquals } from "./rl_asserts.ts";
import { join } from "node:path";
import { loadManifest } from "../lib/manifest/load.ts";
import { runExperiment } from "../lib/runner/run.ts";
import { tinyRlModel } from "./rl_fixtures.ts";
import { KINDS } from "../lib/cli/kinds.ts";

const kinds = KINDS;

function lspBody(modelDir: string, selfReward: boolean) {
  return {
    kind: "lsp",
    description: "two tiny LSP iterations",
    seed: 3,
    model: { dir: modelDir },
    iterations: 2,
    queries: 2,
    batchSize: 1,
    gradAccum: 2,
    answersPerQuery: 2,
    rowsPerPass: 4,
    challenger: {
      prompt: { file: "experiments/assets/tiny/challenger_prompt.txt" },
      maxNewTokens: 6,
    },
    solver: { maxNewTokens: 5 },
    selfReward: {
      enabled: selfReward,
      prompt: { file: "experiments/assets/tiny/judge_prompt.txt" },
      maxNewTokens: 6,
    },
    reward: { kind: "verifier" },
    optimizer: { lr: 1e-3 },
    samplesEvery: 1,
    checkpointEvery: 1,
    eval: { kind: "tiny", perCell: 1, maxNewTokens: 4 },
  };
}

async function run(dir: string, name: string, body: Record<string, unknown>, sets: string[] = []) {
  const file = join(dir, `${name}.jsonc`);
  await Deno.writeTextFile(file, JSON.stringify(body));
  const manifest = loadManifest(file, { experimentsDir: dir, kinds, sets });
  return await runExperiment({ manifest, kinds, root: Deno.cwd(), resultsDir: dir });
}

const readJsonl = async (path: string) =>
  (await Deno.readTextFile(path)).trim().split("\n").map((l) => JSON.parse(l));

Deno.test("tiny LSP: two iterations write metrics, samples, timings, checkpoints and eval", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rl-lsp-" });
  try {
    const modelDir = await tinyRlModel(dir);
    // A random model writes no task, so every reward ties; only k1 in the loss (zero in
    // expectation, not per sample) then moves the weights, which this test needs to check the
    // backward and the log-prob bits after a step.
    const body = { ...lspBody(modelDir, true), loss: { kl: { estimator: "k1", in: "loss" } } };
    const r = await run(dir, "tiny-lsp-test", body);
    assertEquals(r.status, "completed", r.error);
    const metrics = await readJsonl(join(r.bundleDir, "metrics.jsonl"));
    assertEquals(metrics.map((m) => m.iter), [1, 2]);
    for (const m of metrics) {
      console.log(JSON.stringify(m));
      // Training reproduces the generation log-probs bit for bit.
      assertEquals(m.logprobCheck.mismatches, 0);
      assert(m.logprobCheck.compared > 0);
      assertEquals(m.queryValue.values.length, 2);
      assertEquals(m.challengerAdvantage.values.length, 2);
      // Challenger advantages are centred: they sum to zero.
      assert(Math.abs(m.challengerAdvantage.values[0] + m.challengerAdvantage.values[1]) < 1e-12);
      assert(Number.isFinite(m.gradNorm) && m.gradNorm > 0);
      assert(m.selfReward.malformed + m.selfReward.outOfRange <= 4);
      // The judge's distribution counts every readable judgement once; 6 tokens truncate some.
      const readable = 4 - m.selfReward.malformed - m.selfReward.outOfRange;
      assertEquals(m.selfReward.histogram.length, 8);
      assertEquals(m.selfReward.histogram.reduce((a: number, b: number) => a + b, 0), readable);
      assert(m.selfReward.truncated >= 0 && m.selfReward.truncated <= 4);
      // The verifier can tell whether the challenger's queries are tasks.
      assert(m.queries.distinctShare > 0 && m.queries.distinctShare <= 1);
      assert(m.queries.wellFormedShare >= 0 && m.queries.wellFormedShare <= 1);
      assert(m.queries.inRangeShare <= m.queries.wellFormedShare);
      assertEquals(m.lr, 1e-3);
    }
    // The first iteration starts at the reference: both KL estimates are exactly 0 there.
    assertEquals(metrics[0].kl.solver, { k1: 0, k3: 0 });
    assertEquals(metrics[0].kl.challenger, { k1: 0, k3: 0 });
    // After one step the policy differs from the reference; k3 is never negative.
    assert(metrics[1].kl.solver.k3 > 0 || metrics[1].kl.challenger.k3 > 0);
    assert(metrics[1].kl.solver.k3 >= 0 && metrics[1].kl.challenger.k3 >= 0);
    const samples = await readJsonl(join(r.bundleDir, "samples.jsonl"));
    assertEquals(samples.length, 2);
    assertEquals(samples[0].queries[0].answers.length, 2);
    assert(typeof samples[0].queries[0].answers[0].judge === "string");
    const timings = await readJsonl(join(r.bundleDir, "timings.jsonl"));
    assert(timings[0].seconds.training > 0);
    const ev = JSON.parse(await Deno.readTextFile(join(r.bundleDir, "eval.json")));
    assert(ev.winRate.overall.mean >= 0 && ev.winRate.overall.mean <= 1);
    for (const step of ["step-1", "step-2"]) {
      await Deno.stat(join(r.bundleDir, "checkpoints", step, "SHA256SUMS"));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tiny LSP-Zero has no self-reward; GRPO has no challenger", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rl-zero-" });
  try {
    const modelDir = await tinyRlModel(dir);
    const zero = lspBody(modelDir, false);
    const r = await run(dir, "zero", { ...zero, iterations: 1, eval: { kind: "none" } });
    assertEquals(r.status, "completed", r.error);
    const [m] = await readJsonl(join(r.bundleDir, "metrics.jsonl"));
    assertEquals(m.selfReward, undefined);
    assertEquals(m.logprobCheck.mismatches, 0);
    // With the default KL (k1 in the reward), tied rewards at the reference move nothing.
    assertEquals(m.zeroVarianceShare, 1);
    assertEquals(m.gradNorm, 0);

    const { challenger: _c, selfReward: _s, ...rest } = zero;
    const g = await run(dir, "grpo", {
      ...rest,
      kind: "grpo",
      iterations: 1,
      data: { source: "tiny", size: 16 },
      eval: { kind: "none" },
    });
    assertEquals(g.status, "completed", g.error);
    const [gm] = await readJsonl(join(g.bundleDir, "metrics.jsonl"));
    assertEquals(gm.kl.challenger, null);
    assertEquals(gm.loss.challenger, 0);
    const [gs] = await readJsonl(join(g.bundleDir, "samples.jsonl"));
    // Queries come from the generated dataset: well-formed tiny tasks.
    assert(gs.queries.every((q: { query: string }) => q.query.length > 0));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("missing base bundle or weights: the error says what to run or download", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rl-missing-" });
  try {
    const body = lspBody("unused", false);
    const r1 = run(dir, "needs-base", {
      ...body,
      model: { bundle: join(dir, "tiny-pretrain"), bundleExperiment: "tiny-pretrain" },
    });
    let msg = "";
    try {
      await r1;
    } catch (e) {
      msg = (e as Error).message;
    }
    assert(msg.includes("run `deno task exp tiny-pretrain` first"), msg);

    Deno.env.delete("SELFPLAY_TEST_LLAMA_DIR");
    msg = "";
    try {
      await run(dir, "needs-llama", {
        ...body,
        model: { env: "SELFPLAY_TEST_LLAMA_DIR", download: "meta-llama/Llama-3.2-3B-Instruct" },
      });
    } catch (e) {
      msg = (e as Error).message;
    }
    assert(msg.includes("SELFPLAY_TEST_LLAMA_DIR"), msg);
    assert(msg.includes("download meta-llama/Llama-3.2-3B-Instruct from Hugging Face"), msg);

    const r3 = await run(dir, "bad-split", { ...lspBody(dir, false), queries: 3 });
    assertEquals(r3.status, "failed");
    assert((r3.error ?? "").includes("queries (3) must equal batchSize (1) x gradAccum (2)"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
