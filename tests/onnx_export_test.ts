/**
 * The ONNX exporter: the file's layout (Optimum's input and output names, opset, weights
 * transposed for MatMul, f16 storage, external data), determinism, the `model export` command on
 * the committed tiny base, refusals, and that the engine's static module graph stays free of
 * onnxruntime-node and protobufjs.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type LlamaConfig, toHfConfigJson } from "../lib/model/config.ts";
import { randomTensor, tinyTestConfig, writeRandomModel } from "../lib/model/random_model.ts";
import { f32ToF16 } from "../lib/model/safetensors/dtype.ts";
import { openSafetensors } from "../lib/model/safetensors/header.ts";
import { readTensorF32 } from "../lib/model/safetensors/read.ts";
import { exportCheckpointOnnx } from "../lib/onnx/export.ts";
import { type DecodedModel, type DecodedValueInfo, decodeModel } from "../lib/onnx/onnx_proto.ts";
import { OrtLlama } from "../lib/onnx/ort.ts";
import { relativeError } from "../lib/onnx/parity.ts";
import { cli, MAIN, ROOT } from "./cli_helpers.ts";

const TINY_BASE = "results/tiny-pretrain/6039cb339f555af1/checkpoints/step-1500";

async function withDir(f: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "onnx_export_" });
  try {
    await f(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** name -> dims (numbers, or the symbolic names) of a graph's inputs or outputs. */
function signature(values: DecodedValueInfo[]): Record<string, (number | string)[]> {
  const out: Record<string, (number | string)[]> = {};
  for (const v of values) {
    out[v.name] = v.type.tensorType.shape.dim.map((d) => d.dimParam ?? Number(d.dimValue));
  }
  return out;
}

function initializer(m: DecodedModel, name: string) {
  const t = m.graph.initializer.find((i) => i.name === name);
  assert.ok(t, `no initializer ${name}`);
  return t;
}

/** An initializer's raw bytes (a copy, aligned) as f32 or f16 bits. */
function rawF32(bytes: Uint8Array): Float32Array {
  return new Float32Array(bytes.slice().buffer);
}

Deno.test("an exported causal LM has Optimum's inputs and outputs and the weights transposed", async () => {
  await withDir(async (dir) => {
    const config = tinyTestConfig();
    await writeRandomModel(join(dir, "m"), config, { dtype: "F32", seed: 3 });
    const r = await exportCheckpointOnnx(join(dir, "m"), join(dir, "m.onnx"));
    assert.equal(r.dataPath, null);
    const m = decodeModel(await Deno.readFile(join(dir, "m.onnx")));
    assert.equal(m.irVersion, 8);
    assert.deepEqual(m.opsetImport.map((o) => [o.domain, o.version]), [["", 17]]);
    const past = ["batch_size", 2, "past_sequence_length", 8];
    const present = ["batch_size", 2, "total_sequence_length", 8];
    assert.deepEqual(signature(m.graph.input), {
      input_ids: ["batch_size", "sequence_length"],
      attention_mask: ["batch_size", "total_sequence_length"],
      position_ids: ["batch_size", "sequence_length"],
      "past_key_values.0.key": past,
      "past_key_values.0.value": past,
      "past_key_values.1.key": past,
      "past_key_values.1.value": past,
    });
    assert.deepEqual(signature(m.graph.output), {
      logits: ["batch_size", "sequence_length", 64],
      "present.0.key": present,
      "present.0.value": present,
      "present.1.key": present,
      "present.1.value": present,
    });
    // q_proj [out 32, in 32] is stored as [in, out]; lm_head [64, 32] as [32, 64].
    const q = initializer(m, "model.layers.1.self_attn.q_proj.weight.T");
    assert.deepEqual(q.dims, [32, 32]);
    const src = randomTensor("model.layers.1.self_attn.q_proj.weight", 32 * 32, 3);
    const got = rawF32(q.rawData!);
    for (let o = 0; o < 32; o++) {
      for (let i = 0; i < 32; i++) assert.equal(got[i * 32 + o], src[o * 32 + i]);
    }
    assert.deepEqual(initializer(m, "lm_head.weight.T").dims, [32, 64]);
    const norm = initializer(m, "model.norm.weight");
    assert.deepEqual(rawF32(norm.rawData!), randomTensor("model.norm.weight", 32, 3));
    const meta = Object.fromEntries(m.metadataProps.map((p) => [p.key, p.value]));
    assert.deepEqual(JSON.parse(meta.hf_config), toHfConfigJson(config));
    // embed + head 2·64·32, final norm 32, per layer 2·32 norms + q, k, v, o 32·(32+16+16+32) +
    // MLP 3·48·32
    assert.equal(r.parameters, 2 * 64 * 32 + 32 + 2 * (2 * 32 + 32 * 96 + 3 * 48 * 32));

    // The same checkpoint exports to the same bytes.
    await exportCheckpointOnnx(join(dir, "m"), join(dir, "again.onnx"));
    assert.deepEqual(
      await Deno.readFile(join(dir, "again.onnx")),
      await Deno.readFile(join(dir, "m.onnx")),
    );
  });
});

Deno.test("tied models reuse the embedding; reward models output pooled [batch, labels] logits", async () => {
  await withDir(async (dir) => {
    await writeRandomModel(join(dir, "tied"), tinyTestConfig({ tieWordEmbeddings: true }), {
      dtype: "F32",
      seed: 1,
    });
    await exportCheckpointOnnx(join(dir, "tied"), join(dir, "tied.onnx"));
    const tied = decodeModel(await Deno.readFile(join(dir, "tied.onnx")));
    const names = tied.graph.initializer.map((i) => i.name);
    assert.ok(!names.some((n) => n.startsWith("lm_head")), names.join(", "));
    const head = tied.graph.node.find((n) => n.output[0] === "lm_head.tied");
    assert.equal(head?.opType, "Transpose");
    assert.deepEqual(head?.input, ["model.embed_tokens.weight"]);

    const rm: LlamaConfig = tinyTestConfig({
      architecture: "LlamaForSequenceClassification",
      numLabels: 3,
      padTokenId: 0,
    });
    await writeRandomModel(join(dir, "rm"), rm, { dtype: "F32", seed: 1 });
    await exportCheckpointOnnx(join(dir, "rm"), join(dir, "rm.onnx"));
    const m = decodeModel(await Deno.readFile(join(dir, "rm.onnx")));
    assert.deepEqual(signature(m.graph.input), {
      input_ids: ["batch_size", "sequence_length"],
      attention_mask: ["batch_size", "sequence_length"],
    });
    assert.deepEqual(signature(m.graph.output), { logits: ["batch_size", 3] });
  });
});

Deno.test("f16 storage and external data: bits as asked, and the same logits from onnxruntime", async () => {
  await withDir(async (dir) => {
    const config = tinyTestConfig();
    await writeRandomModel(join(dir, "m"), config, { dtype: "F32", seed: 9, std: 0.3 });
    const inline = await exportCheckpointOnnx(join(dir, "m"), join(dir, "inline.onnx"));
    const ext = await exportCheckpointOnnx(join(dir, "m"), join(dir, "ext.onnx"), {
      externalData: true,
    });
    assert.equal(ext.dataPath, join(dir, "ext.onnx_data"));
    assert.ok(ext.bytes < 20_000, `the model file keeps only the graph (${ext.bytes} bytes)`);
    const m = decodeModel(await Deno.readFile(join(dir, "ext.onnx")));
    const data = await Deno.readFile(ext.dataPath!);
    assert.equal(data.length, ext.dataBytes);
    const embed = initializer(m, "model.embed_tokens.weight");
    assert.equal(embed.dataLocation, 1);
    const info = Object.fromEntries(embed.externalData.map((e) => [e.key, e.value]));
    assert.equal(info.location, "ext.onnx_data");
    assert.equal(Number(info.offset) % 4096, 0);
    assert.equal(Number(info.length), 64 * 32 * 4);
    const src = randomTensor("model.embed_tokens.weight", 64 * 32, 9, 0.3);
    const at = Number(info.offset);
    assert.deepEqual(rawF32(data.subarray(at, at + Number(info.length))), src);

    const f16 = await exportCheckpointOnnx(join(dir, "m"), join(dir, "f16.onnx"), {
      dtype: "f16",
    });
    const h = decodeModel(await Deno.readFile(f16.path));
    const up = initializer(h, "model.layers.0.mlp.up_proj.weight.T");
    assert.equal(up.dataType, 10); // FLOAT16
    const upSrc = randomTensor("model.layers.0.mlp.up_proj.weight", 48 * 32, 9, 0.3);
    const bits = new Uint16Array(up.rawData!.slice().buffer);
    const want = f32ToF16(upSrc);
    for (let o = 0; o < 48; o++) {
      for (let i = 0; i < 32; i++) assert.equal(bits[i * 48 + o], want[o * 32 + i]);
    }
    assert.equal(initializer(h, "model.norm.weight").dataType, 1, "norm weights stay f32");
    assert.ok(f16.bytes < inline.bytes * 0.65, `${f16.bytes} vs ${inline.bytes}`);

    const seqs = [[1, 5, 9, 33, 60, 2, 7]];
    const logits = [];
    for (const p of [inline.path, ext.path!]) {
      const s = await OrtLlama.open(p, config, { intraOpThreads: 1 });
      logits.push(await s.logits(seqs));
      await s.release();
    }
    assert.deepEqual(logits[1], logits[0], "external data changes nothing");
  });
});

Deno.test("model export on the committed tiny base: onnxruntime agrees with `model logits`", async () => {
  await withDir(async (dir) => {
    const out = join(dir, "onnx", "model.onnx");
    const ex = await cli([
      "model",
      "export",
      "--model",
      TINY_BASE,
      "--format",
      "onnx",
      "--out",
      out,
    ]);
    assert.equal(ex.code, 0, ex.stderr);
    assert.match(
      ex.stdout,
      /wrote .*model\.onnx \(\d+ bytes\): LlamaForCausalLM, 99072 parameters/,
    );
    const tokens = [1, 40, 71, 84, 71, 84, 85, 71, 26, 10, 75, 79, 85, 68];
    const lg = await cli([
      "model",
      "logits",
      "--model",
      TINY_BASE,
      "--tokens",
      tokens.join(","),
      "--out",
      join(dir, "logits.safetensors"),
    ]);
    assert.equal(lg.code, 0, lg.stderr);
    const want = await readTensorF32(
      await openSafetensors(join(dir, "logits.safetensors")),
      "logits",
    );
    const { loadLlamaConfig } = await import("../lib/model/config.ts");
    const ort = await OrtLlama.open(out, await loadLlamaConfig(join(ROOT, TINY_BASE)));
    const got = await ort.logits([tokens]);
    await ort.release();
    const rel = relativeError(got, want);
    assert.ok(rel <= 1e-5, `relative error ${rel}`);
    console.log(`tiny base via the CLI: logits relative error ${rel.toExponential(2)}`);

    // A second export to the same file is refused; --force replaces it.
    const again = await cli(["model", "export", "--model", TINY_BASE, "--out", out]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /model\.onnx already exists; refusing to replace it/);
    assert.doesNotMatch(again.stderr, /^\s+at /m, "a user error: no stack trace");
    const forced = await cli(["model", "export", "--model", TINY_BASE, "--out", out, "--force"]);
    assert.equal(forced.code, 0, forced.stderr);
  });
});

Deno.test("model export refuses what it cannot export, naming the file and field", async () => {
  await withDir(async (dir) => {
    const m = join(dir, "m");
    await writeRandomModel(m, tinyTestConfig(), { dtype: "F32", seed: 2 });
    const cfg = JSON.parse(await Deno.readTextFile(join(m, "config.json")));
    await Deno.writeTextFile(
      join(m, "config.json"),
      JSON.stringify({ ...cfg, rope_scaling: { rope_type: "dynamic", factor: 2 } }),
    );
    const out = join(dir, "m.onnx");
    const r1 = await cli(["model", "export", "--model", m, "--out", out]);
    assert.equal(r1.code, 1);
    assert.match(r1.stderr, /config\.json: rope_scaling\.rope_type "dynamic" is not supported/);
    await Deno.writeTextFile(
      join(m, "config.json"),
      JSON.stringify({ ...cfg, num_hidden_layers: 3 }),
    );
    const r2 = await cli(["model", "export", "--model", m, "--out", out]);
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /missing model\.layers\.2\.input_layernorm\.weight/);
    const r3 = await cli(["model", "export", "--model", m, "--out", out, "--format", "gguf"]);
    assert.equal(r3.code, 2);
    assert.match(r3.stderr, /--format "gguf" is not supported \(onnx\)/);
    const r4 = await cli(["model", "export", "--model", m, "--out", out, "--dtype", "bf16"]);
    assert.equal(r4.code, 2);
    assert.match(r4.stderr, /--dtype must be f32 or f16, got "bf16"/);
    const r5 = await cli(["model", "export", "--model", m, "--tokens", "1,2", "--out", out]);
    assert.equal(r5.code, 2);
    assert.match(r5.stderr, /--tokens does not apply here/);
    for (const r of [r1, r2, r3, r4, r5]) {
      assert.doesNotMatch(r.stderr, /^\s+at /m, "a user error: no stack trace");
    }
    assert.ok(!(await Deno.stat(out).then(() => true, () => false)), "nothing was written");
  });
});

Deno.test("the engine's static module graph carries neither onnxruntime-node nor protobufjs", async () => {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", MAIN],
    cwd: ROOT,
    stdout: "piped",
    stderr: "null",
  }).output();
  assert.equal(r.code, 0);
  const info = JSON.parse(new TextDecoder().decode(r.stdout));
  type Dep = { code?: { specifier: string }; isDynamic?: boolean };
  const deps = new Map<string, Dep[]>();
  for (const mod of info.modules) deps.set(mod.specifier, mod.dependencies ?? []);
  // Everything main.ts loads before any dynamic import() runs.
  const seen = new Set<string>(), todo = [...info.roots];
  while (todo.length > 0) {
    const s = todo.pop()!;
    if (seen.has(s)) continue;
    seen.add(s);
    for (const d of deps.get(s) ?? []) if (d.code && !d.isDynamic) todo.push(d.code.specifier);
  }
  const loaded = [...seen];
  assert.ok(loaded.some((s) => s.endsWith("/lib/cli/model.ts")), "walked the real graph");
  const heavy = loaded.filter((s) =>
    /^npm:\/?(onnxruntime|onnx-proto|protobufjs)/.test(s) ||
    /\/lib\/onnx\/(export|ort|onnx_proto)\.ts$/.test(s)
  );
  assert.deepEqual(heavy, []);
  // The walk does see them behind the dynamic import()s.
  const all = info.modules.map((m: { specifier: string }) => m.specifier);
  assert.ok(
    all.some((s: string) => s.endsWith("/lib/onnx/export.ts")),
    "export.ts is in the graph",
  );
});
