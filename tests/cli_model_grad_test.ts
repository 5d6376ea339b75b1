/**
 * `model grad` (issue 4 item 4): the gradient of the mean next-token NLL (position t predicts
 * t+1) w.r.t. every parameter, F32, under the parameters' HF names. The written file must hold
 * exactly the tensors the config implies (a tied model has no lm_head.weight, even when its
 * folder carries one), with their shapes, and entries of every kind of tensor must match central
 * finite differences of the NLL of the independent f64 reference.
 */
import assert from "node:assert/strict";
import { expectedTensors, type LlamaConfig, toHfConfigJson } from "../lib/model/config.ts";
import { tinyTestConfig, writeRandomModel } from "../lib/model/random_model.ts";
import { type SafetensorsFile } from "../lib/model/safetensors/format.ts";
import { openSafetensors } from "../lib/model/safetensors/header.ts";
import { readTensorF32 } from "../lib/model/safetensors/read.ts";
import { writeSafetensors } from "../lib/model/safetensors/write.ts";
import { readModelF64, refMeanNll } from "./reference/llama_ref.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** Runs `deno run -A main.ts model grad ...args`; returns the exit code and stderr. */
async function modelGrad(...args: string[]): Promise<{ code: number; err: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "model", "grad", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: r.code, err: new TextDecoder().decode(r.stderr) };
}

/** Asserts the file holds exactly `config`'s tensors, F32, with their shapes. */
function assertEveryParameter(file: SafetensorsFile, config: LlamaConfig): void {
  const want = expectedTensors(config);
  assert.deepEqual([...file.tensors.keys()].sort(), [...want.keys()].sort());
  for (const [name, shape] of want) {
    const info = file.tensors.get(name)!;
    assert.equal(info.dtype, "F32", `${name} dtype`);
    assert.deepEqual(info.shape, shape, `${name} shape`);
  }
  assert.equal(file.tensors.has("lm_head.weight"), !config.tieWordEmbeddings);
}

const IDS = [1, 9, 40, 7, 33, 9];

for (const tied of [false, true]) {
  Deno.test(`model grad (${tied ? "tied" : "untied"}): every parameter, F32, matching finite differences of the f64 NLL`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "cli_grad_" });
    try {
      const config = tinyTestConfig({ tieWordEmbeddings: tied });
      await writeRandomModel(dir, config, { dtype: "F32", seed: tied ? 21 : 20, std: 0.3 });
      if (tied) {
        // A tied folder carrying a (different) lm_head.weight: the engine must ignore it, so it
        // gets no gradient and the loss is that of the tied head (the reference ignores it too).
        const st = `${dir}/model.safetensors`;
        const f = await openSafetensors(st);
        const tensors = [];
        for (const [name, info] of f.tensors) {
          tensors.push({
            name,
            dtype: "F32" as const,
            shape: info.shape,
            data: await readTensorF32(f, name),
          });
        }
        const emb = await readTensorF32(f, "model.embed_tokens.weight");
        tensors.push({
          name: "lm_head.weight",
          dtype: "F32" as const,
          shape: [config.vocabSize, config.hiddenSize],
          data: emb.map((x) => -x),
        });
        await writeSafetensors(st, tensors, { format: "pt" });
      }
      const ref = await readModelF64(dir);
      assert.equal(ref.config.tied, tied);

      const out = `${dir}/grad.safetensors`;
      const r = await modelGrad("--model", dir, "--tokens", IDS.join(","), "--out", out);
      assert.equal(r.code, 0, r.err);
      const file = await openSafetensors(out);
      assertEveryParameter(file, config);
      const nll = Number(file.metadata.loss);
      const refNll = refMeanNll(ref.config, ref.weights, IDS);
      assert.ok(Math.abs(nll - refNll) < 1e-4, `loss ${nll} vs reference ${refNll}`);

      // Central differences of the f64 NLL at a few entries of every kind of tensor: the
      // entry with the largest gradient, plus fixed ones (which may be exactly zero).
      const D = config.hiddenSize;
      const unused = 5; // a token id not in IDS: its embedding row matters only through a tied head
      assert.ok(!IDS.includes(unused));
      const fixed: Record<string, number[]> = {
        "model.embed_tokens.weight": [9 * D + 3, unused * D + 7],
        "model.layers.0.self_attn.q_proj.weight": [5, 77],
        "model.layers.0.self_attn.k_proj.weight": [11],
        "model.layers.0.self_attn.v_proj.weight": [40],
        "model.layers.0.self_attn.o_proj.weight": [123],
        "model.layers.0.input_layernorm.weight": [2],
        "model.layers.1.post_attention_layernorm.weight": [30],
        "model.layers.1.mlp.gate_proj.weight": [300],
        "model.layers.1.mlp.up_proj.weight": [17],
        "model.layers.1.mlp.down_proj.weight": [401],
        "model.norm.weight": [6],
      };
      if (!tied) fixed["lm_head.weight"] = [9 * D + 1, 40 * D + 20];
      const h = 1e-4;
      let checked = 0;
      for (const [name, fixedIdx] of Object.entries(fixed)) {
        const g = await readTensorF32(file, name);
        let top = 0;
        for (let i = 1; i < g.length; i++) if (Math.abs(g[i]) > Math.abs(g[top])) top = i;
        assert.ok(Math.abs(g[top]) > 1e-3, `${name}: largest gradient ${g[top]} is too small`);
        const w = ref.weights.get(name)!;
        for (const i of [top, ...fixedIdx]) {
          const w0 = w[i];
          w[i] = w0 + h;
          const up = refMeanNll(ref.config, ref.weights, IDS);
          w[i] = w0 - h;
          const down = refMeanNll(ref.config, ref.weights, IDS);
          w[i] = w0;
          const fd = (up - down) / (2 * h);
          assert.ok(
            Math.abs(g[i] - fd) <= 1e-4 + 1e-3 * Math.abs(fd),
            `${name}[${i}]: gradient ${g[i]}, central difference ${fd}`,
          );
          checked++;
        }
      }
      assert.ok(checked >= 20);
      // Tied: the unused token's embedding row gets its gradient from the head alone.
      const embGrad = await readTensorF32(file, "model.embed_tokens.weight");
      const row = embGrad.subarray(unused * D, unused * D + D);
      assert.equal(row.some((x) => x !== 0), tied, "unused embedding row gradient");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("model grad --synthetic: every parameter of a tied config, no lm_head", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cli_grad_syn_" });
  try {
    const config = tinyTestConfig({ tieWordEmbeddings: true });
    const cfg = `${dir}/config.json`;
    await Deno.writeTextFile(cfg, JSON.stringify(toHfConfigJson(config)));
    const out = `${dir}/g.safetensors`;
    const r = await modelGrad(
      "--synthetic",
      cfg,
      "--seed",
      "2",
      "--tokens",
      "3,1,4,1",
      "--out",
      out,
    );
    assert.equal(r.code, 0, r.err);
    const file = await openSafetensors(out);
    assertEveryParameter(file, config);
    for (const name of file.tensors.keys()) {
      const g = await readTensorF32(file, name);
      assert.ok(g.every(Number.isFinite) && g.some((x) => x !== 0), `${name} gradient`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
