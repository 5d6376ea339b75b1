// End to end through the runner: a one-iteration tiny LSP run evaluated AlpacaEval-style by an
// LLM judge of its own (a generated model), with training's models freed before the judge
// loads and AlpacaEval's files in the bundle; and a missing judge failing before training.
import { assert, assertEquals } from "./rl_asserts.ts";
import { join } from "node:path";
import { loadManifest } from "../lib/manifest/load.ts";
import { runExperiment } from "../lib/runner/run.ts";
import { verifyBundle } from "../lib/bundle/verify.ts";
import { KINDS } from "../lib/cli/kinds.ts";
import { tinyTestConfig, writeRandomModel } from "../lib/model/random_model.ts";
import { TINY_VOCAB_SIZE, writeTinyTokenizer } from "../lib/tinyworld/tokenizer.ts";
import { tinyRlModel } from "./rl_fixtures.ts";

const EVAL_SET = [
  { instruction: "reverse abc", dataset: "helpful_base" },
  { instruction: "add 2 3", dataset: "koala" },
  { instruction: "sort c a b", dataset: "koala" },
];

function body(modelDir: string, dir: string, judgeDir: string) {
  return {
    kind: "lsp",
    description: "one tiny LSP iteration, AlpacaEval by an LLM judge",
    seed: 3,
    model: { dir: modelDir },
    iterations: 1,
    queries: 2,
    batchSize: 1,
    gradAccum: 2,
    answersPerQuery: 2,
    challenger: {
      prompt: { file: "experiments/assets/tiny/challenger_prompt.txt" },
      maxNewTokens: 6,
    },
    solver: { maxNewTokens: 5 },
    selfReward: { enabled: false },
    reward: { kind: "verifier" },
    optimizer: { lr: 1e-3 },
    eval: {
      kind: "alpaca",
      maxNewTokens: 6,
      evalSet: { path: join(dir, "eval.json") },
      judge: {
        kind: "llm",
        model: { dir: judgeDir },
        promptFile: join(dir, "judge.txt"),
        // A random judge rarely ranks a label in its top 5: read every verdict.
        labelTopK: 0,
      },
    },
  };
}

async function run(dir: string, name: string, b: Record<string, unknown>) {
  const file = join(dir, `${name}.jsonc`);
  await Deno.writeTextFile(file, JSON.stringify(b));
  const manifest = loadManifest(file, { experimentsDir: dir, kinds: KINDS });
  return await runExperiment({ manifest, kinds: KINDS, root: Deno.cwd(), resultsDir: dir });
}

Deno.test("tiny LSP evaluated by an LLM judge: training freed first, AlpacaEval's files in the bundle", async () => {
  const dir = await Deno.makeTempDir({ prefix: "llm-judge-run-" });
  try {
    const modelDir = await tinyRlModel(dir);
    const judgeDir = join(dir, "judge");
    await writeRandomModel(
      judgeDir,
      tinyTestConfig({ vocabSize: TINY_VOCAB_SIZE, maxPositionEmbeddings: 512 }),
      { dtype: "F32", seed: 11, std: 0.3 },
    );
    await writeTinyTokenizer(judgeDir);
    await Deno.writeTextFile(join(dir, "eval.json"), JSON.stringify(EVAL_SET));
    await Deno.writeTextFile(
      join(dir, "judge.txt"),
      "{instruction}\n{label_1}:{output_1}\n{label_2}:{output_2}\n?",
    );
    const r = await run(dir, "judged", body(modelDir, dir, judgeDir));
    assertEquals(r.status, "completed", r.error);
    assert((await verifyBundle(r.bundleDir)).ok);
    const index = JSON.parse(await Deno.readTextFile(join(r.bundleDir, "bundle.json")));
    const files = new Map(
      index.files.map((f: { path: string; deterministic: boolean }) => [f.path, f.deterministic]),
    );
    for (const f of ["eval.json", "model_outputs.json", "base_outputs.json", "annotations.json"]) {
      assertEquals(files.get(f), true, f);
    }
    const ev = JSON.parse(await Deno.readTextFile(join(r.bundleDir, "eval.json")));
    assertEquals(ev.judge.kind, "llm");
    assertEquals(ev.judge.model, "judge");
    assertEquals(ev.evalSet.n, 3);
    assertEquals(ev.lengthControlled.glm, "length_controlled_minimal");
    const ann = JSON.parse(await Deno.readTextFile(join(r.bundleDir, "annotations.json")));
    assertEquals(ann.map((a: { generator_2: string }) => a.generator_2), [
      "judged",
      "judged",
      "judged",
    ]);
    const mean = ann.reduce((s: number, a: { preference: number }) => s + a.preference - 1, 0) / 3;
    assert(Math.abs(mean - ev.winRate.overall.mean) < 1e-12);
    // The judge loaded only after training's models and optimizer state were freed.
    const log = await Deno.readTextFile(join(r.bundleDir, "log.txt"));
    const freed = log.indexOf("freed training's models"), judging = log.indexOf("judges 3 pairs");
    assert(freed > 0 && judging > freed, log);
    assert(/eval: win rate .*length-controlled .* judged by judge \(an LLM judge/.test(log), log);
    // The judge's weights are an input: they enter the run id and provenance.
    const prov = JSON.parse(await Deno.readTextFile(join(r.bundleDir, "provenance.json")));
    assert(JSON.stringify(prov.inputs).includes(judgeDir), JSON.stringify(prov.inputs));

    // A missing judge fails before the first iteration, saying what to download and where.
    let msg = "";
    try {
      await run(dir, "no-judge", body(modelDir, dir, join(dir, "Llama-3.1-8B-Instruct")));
    } catch (e) {
      msg = (e as Error).message;
    }
    assert(
      msg.includes(`eval.judge.model: ${join(dir, "Llama-3.1-8B-Instruct")} does not exist`),
      msg,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
