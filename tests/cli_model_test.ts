import assert from "node:assert/strict";
import { toHfConfigJson } from "../lib/model/config.ts";
import { tinyTestConfig, writeRandomModel } from "../lib/model/random_model.ts";
import { loadTokenizer } from "../lib/model/tokenizer.ts";
import { TINY_VOCAB_SIZE, writeTinyTokenizer } from "../lib/tinyworld/tokenizer.ts";
import { readModelF64, readSafetensorsF64, refLogits, refMeanNll } from "./reference/llama_ref.ts";
import { maxAbsDiff } from "./helpers.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** Runs `deno run -A main.ts model ...args`; returns the exit code and both streams. */
async function model(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "model", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout), err: dec.decode(r.stderr) };
}

/** Asserts a failure with exit code `code`, one error line matching `re`, no stack trace. */
function assertCleanError(r: { code: number; out: string; err: string }, code: number, re: RegExp) {
  assert.equal(r.code, code, `exit code (stderr: ${r.err})`);
  assert.match(r.err, /^error: /m);
  assert.match(r.err, re);
  assert.doesNotMatch(r.err, /^\s+at /m, "no stack trace");
}

const config = tinyTestConfig({ vocabSize: TINY_VOCAB_SIZE, eosTokenIds: [2] });

Deno.test("model CLI end to end on a generated model folder", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cli_model_" });
  try {
    await writeRandomModel(dir, config, { dtype: "BF16", shards: 2, seed: 4, std: 0.3 });
    await writeTinyTokenizer(dir);
    const ref = await readModelF64(dir);

    const info = await model("info", "--model", dir);
    assert.equal(info.code, 0, info.err);
    const j = JSON.parse(info.out);
    assert.equal(j.numLayers, 2);
    assert.equal(j.files, 2);
    let params = 0;
    for (const w of ref.weights.values()) params += w.length;
    assert.equal(j.parameters, params);
    assert.deepEqual(j.dtypes, { BF16: ref.weights.size });
    assert.equal(j.fileBytes, params * 2);

    const tok = await loadTokenizer(dir);
    const t1 = await model("tokenize", "--model", dir, "--text", "ab 12");
    assert.equal(t1.code, 0, t1.err);
    assert.deepEqual(JSON.parse(t1.out), tok.encode("ab 12"));
    const t2 = await model("tokenize", "--model", dir, "--text", "hi", "--chat");
    assert.deepEqual(
      JSON.parse(t2.out),
      tok.encodeChat([{ role: "user", content: "hi" }], { addGenerationPrompt: true }),
    );

    const ids = [1, 9, 40, 7, 33];
    const lf = `${dir}/logits.safetensors`;
    const lg = await model("logits", "--model", dir, "--tokens", ids.join(","), "--out", lf);
    assert.equal(lg.code, 0, lg.err);
    const got = (await readSafetensorsF64(lf)).get("logits")!;
    const want = refLogits(ref.config, ref.weights, ids);
    assert.equal(got.length, ids.length * TINY_VOCAB_SIZE);
    const scale = want.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
    assert.ok(maxAbsDiff(got, want) <= 1e-3 * scale);

    const gf = `${dir}/grad.safetensors`;
    const gr = await model("grad", "--model", dir, "--tokens", ids.join(","), "--out", gf);
    assert.equal(gr.code, 0, gr.err);
    const grads = await readSafetensorsF64(gf);
    assert.deepEqual([...grads.keys()].sort(), [...ref.weights.keys()].sort());
    for (const [name, g] of grads) {
      assert.equal(g.length, ref.weights.get(name)!.length, name);
      assert.ok(g.some((x) => x !== 0), `${name} gradient is all zeros`);
    }
    const header = JSON.parse(
      new TextDecoder().decode((await Deno.readFile(gf)).subarray(8, 8 + 4096)).split("}}")[0] +
        "}}",
    );
    const nll = Number(header.__metadata__.loss);
    assert.ok(Math.abs(nll - refMeanNll(ref.config, ref.weights, ids)) < 1e-4, `loss ${nll}`);
    // The gradient of one embedding entry against a central difference of the f64 loss.
    const emb = ref.weights.get("model.embed_tokens.weight")!;
    const i = 9 * config.hiddenSize + 3, h = 1e-4, w0 = emb[i];
    emb[i] = w0 + h;
    const up = refMeanNll(ref.config, ref.weights, ids);
    emb[i] = w0 - h;
    const down = refMeanNll(ref.config, ref.weights, ids);
    emb[i] = w0;
    const fd = (up - down) / (2 * h);
    assert.ok(
      Math.abs(grads.get("model.embed_tokens.weight")![i] - fd) < 1e-4 + 1e-3 * Math.abs(fd),
    );

    const gen = await model(
      "generate",
      "--model",
      dir,
      "--prompt",
      "abc",
      "--chat",
      "--n",
      "2",
      "--max-new-tokens",
      "4",
      "--temperature",
      "0",
    );
    assert.equal(gen.code, 0, gen.err);
    const lines = gen.out.trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(lines.length, 3);
    assert.deepEqual(lines[0].tokens, lines[1].tokens); // greedy: both samples agree
    assert.ok(lines[0].tokens.length >= 1 && lines[0].tokens.length <= 4);
    assert.equal(typeof lines[0].text, "string");
    assert.equal(
      lines[2].promptTokens,
      tok.encodeChat([{ role: "user", content: "abc" }], {
        addGenerationPrompt: true,
      }).length,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("model CLI with --synthetic weights", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cli_model_syn_" });
  try {
    const cfg = `${dir}/config.json`;
    await Deno.writeTextFile(cfg, JSON.stringify(toHfConfigJson(config)));
    const info = await model("info", "--synthetic", cfg);
    assert.equal(info.code, 0, info.err);
    assert.equal(JSON.parse(info.out).vocabSize, TINY_VOCAB_SIZE);
    const run = () =>
      model(
        "generate",
        "--synthetic",
        cfg,
        "--seed",
        "3",
        "--tokens",
        "1,2,3",
        "--max-new-tokens",
        "3",
      );
    const a = await run(), b = await run();
    assert.equal(a.code, 0, a.err);
    assert.equal(a.out.split("\n")[0], b.out.split("\n")[0]); // deterministic
    assert.equal(JSON.parse(a.out.split("\n")[0]).tokens.length, 3);
    const gf = `${dir}/g.safetensors`;
    const g = await model("grad", "--synthetic", cfg, "--tokens", "1,2,3", "--out", gf);
    assert.equal(g.code, 0, g.err);
    assert.equal((await readSafetensorsF64(gf)).size, 2 + 9 * config.numLayers + 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("model CLI bad input: one clear error, non-zero exit, no stack trace", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cli_model_bad_" });
  try {
    await writeRandomModel(dir, config, { dtype: "F32", seed: 1 });
    const out = `${dir}/o.safetensors`;
    assertCleanError(
      await model("logits", "--model", `${dir}/nope`, "--tokens", "1", "--out", out),
      1,
      /nope: no such directory/,
    );
    assertCleanError(await model("info"), 2, /exactly one of --model DIR and --synthetic/);
    assertCleanError(await model("frobnicate"), 2, /unknown subcommand "frobnicate"/);
    assertCleanError(
      await model("logits", "--model", dir, "--tokens", "1,x", "--out", out),
      2,
      /--tokens: item 2 \("x"\) is not a token id/,
    );
    assertCleanError(
      await model("logits", "--model", dir, "--tokens", `1,${TINY_VOCAB_SIZE}`, "--out", out),
      1,
      /outside the vocabulary/,
    );
    assertCleanError(await model("grad", "--model", dir, "--tokens", "1"), 2, /--out is required/);
    assertCleanError(
      await model("tokenize", "--model", dir, "--text", "a"),
      1,
      /tokenizer\.json/,
    );

    // Truncated safetensors: the header promises more bytes than the file holds.
    const st = `${dir}/model.safetensors`;
    const bytes = await Deno.readFile(st);
    await Deno.writeFile(st, bytes.subarray(0, bytes.length - 100));
    assertCleanError(
      await model("logits", "--model", dir, "--tokens", "1", "--out", out),
      1,
      /model\.safetensors/,
    );

    // Broken config: invalid JSON, then an unsupported activation.
    await Deno.writeTextFile(`${dir}/config.json`, "{ not json");
    assertCleanError(await model("info", "--model", dir), 1, /config\.json/);
    await Deno.writeTextFile(
      `${dir}/config.json`,
      JSON.stringify({ ...toHfConfigJson(config), hidden_act: "gelu" }),
    );
    assertCleanError(await model("info", "--model", dir), 1, /hidden_act/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
