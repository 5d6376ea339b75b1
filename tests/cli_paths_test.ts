// Paths inside a manifest are relative to the project root, whatever folder the command runs in
// (lib/util/project_path.ts); a command's own path arguments stay relative to that folder.
import assert from "node:assert/strict";
import { join } from "node:path";
import { MAIN, ROOT } from "./cli_helpers.ts";
import { PROJECT_ROOT, projectPath } from "../lib/util/project_path.ts";
import { verifyBundle } from "../lib/bundle/verify.ts";

/** Runs main.ts from `cwd` (optionally as `deno task` does, with INIT_CWD). */
async function cliIn(cwd: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd,
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("projectPath: relative to the project root, absolute as given", () => {
  assert.equal(
    projectPath("experiments/assets/tiny"),
    join(PROJECT_ROOT, "experiments/assets/tiny"),
  );
  assert.equal(projectPath("/data/llama"), "/data/llama");
  assert.equal(PROJECT_ROOT, ROOT.replace(/\/$/, ""));
});

Deno.test("shipped experiments run from experiments/ and from lib/", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cli_paths_" });
  try {
    // sft-tiny names its tokenizer and data under experiments/assets/.
    const sft = await cliIn(join(ROOT, "experiments"), [
      "exp",
      "sft-tiny",
      "--set",
      "steps=2",
      "--out",
      join(tmp, "sft"),
    ]);
    assert.equal(sft.code, 0, sft.stderr);
    assert.ok((await verifyBundle(join(tmp, "sft"))).ok);
    // tiny-lsp names the committed base bundle under results/ and prompts under experiments/
    // (from lib/, the old code advised a 43-minute tiny-pretrain rerun).
    const small = [
      "--set",
      "iterations=1",
      "--set",
      "queries=2",
      "--set",
      "batchSize=1",
      "--set",
      "answersPerQuery=2",
      "--set",
      "eval.perCell=1",
      "--set",
      "eval.challengerSamples=1",
    ];
    const lsp = await cliIn(join(ROOT, "lib"), [
      "exp",
      "tiny-lsp",
      ...small,
      "--out",
      join(tmp, "lsp"),
    ]);
    assert.equal(lsp.code, 0, lsp.stderr);
    assert.doesNotMatch(lsp.stderr, /run `deno task exp tiny-pretrain` first/);
    assert.ok((await verifyBundle(join(tmp, "lsp"))).ok);
    // As `deno task` runs it (cwd the root, INIT_CWD the user's folder): a command's own path
    // argument (--out) is relative to the folder it was typed in.
    const task = await cliIn(ROOT, ["exp", "sft-tiny", "--set", "steps=1", "--out", "rel-out"], {
      INIT_CWD: tmp,
    });
    assert.equal(task.code, 0, task.stderr);
    assert.ok((await verifyBundle(join(tmp, "rel-out"))).ok, "--out rel-out lands in INIT_CWD");
    assert.equal(task.stdout.trim(), "rel-out");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
