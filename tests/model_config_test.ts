import assert from "node:assert/strict";
import {
  checkTensors,
  expectedTensors,
  type LlamaConfig,
  loadLlamaConfig,
  parseLlamaConfig,
  toHfConfigJson,
} from "../lib/model/config.ts";
import { openCheckpoint } from "../lib/model/safetensors/checkpoint_folder.ts";
import { ModelFormatError } from "../lib/model/safetensors/format.ts";
import { tinyTestConfig, writeRandomModel } from "../lib/model/random_model.ts";

/** meta-llama/Llama-3.2-3B-Instruct config.json, field for field. */
const LLAMA_32_3B = {
  architectures: ["LlamaForCausalLM"],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  head_dim: 128,
  hidden_act: "silu",
  hidden_size: 3072,
  initializer_range: 0.02,
  intermediate_size: 8192,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: "llama",
  num_attention_heads: 24,
  num_hidden_layers: 28,
  num_key_value_heads: 8,
  pretraining_tp: 1,
  rms_norm_eps: 1e-05,
  rope_scaling: {
    factor: 32.0,
    high_freq_factor: 4.0,
    low_freq_factor: 1.0,
    original_max_position_embeddings: 8192,
    rope_type: "llama3",
  },
  rope_theta: 500000.0,
  tie_word_embeddings: true,
  torch_dtype: "bfloat16",
  transformers_version: "4.45.0.dev0",
  use_cache: true,
  vocab_size: 128256,
};

Deno.test("parses the real Llama-3.2-3B-Instruct config.json", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(LLAMA_32_3B, null, 2));
  const c = await loadLlamaConfig(dir);
  const want: LlamaConfig = {
    architecture: "LlamaForCausalLM",
    vocabSize: 128256,
    hiddenSize: 3072,
    intermediateSize: 8192,
    numLayers: 28,
    numHeads: 24,
    numKvHeads: 8,
    headDim: 128,
    rmsNormEps: 1e-5,
    ropeTheta: 500000,
    ropeScaling: {
      factor: 32,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositionEmbeddings: 8192,
    },
    maxPositionEmbeddings: 131072,
    tieWordEmbeddings: true,
    bosTokenId: 128000,
    eosTokenIds: [128001, 128008, 128009],
    padTokenId: null,
    numLabels: 2,
    torchDtype: "bfloat16",
  };
  assert.deepEqual(c, want);
  const t = expectedTensors(c);
  assert.equal(t.size, 1 + 28 * 9 + 1);
  assert.ok(!t.has("lm_head.weight"));
  assert.deepEqual(t.get("model.layers.27.self_attn.k_proj.weight"), [1024, 3072]);
  assert.deepEqual(t.get("model.layers.0.self_attn.o_proj.weight"), [3072, 3072]);
  assert.deepEqual(t.get("model.layers.3.mlp.down_proj.weight"), [3072, 8192]);
  let params = 0;
  for (const s of t.values()) params += s.reduce((a, b) => a * b, 1);
  assert.equal(params, 3_212_749_824); // Llama 3.2 3B's published 3.21B parameters
  assert.deepEqual(parseLlamaConfig(toHfConfigJson(c), "round trip"), c);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("reward model config: score.weight instead of a head; num_labels from id2label", () => {
  const c = parseLlamaConfig({
    ...LLAMA_32_3B,
    architectures: ["LlamaForSequenceClassification"],
    id2label: { "0": "LABEL_0" },
    pad_token_id: 128256 - 1,
  }, "rm/config.json");
  assert.equal(c.numLabels, 1);
  assert.equal(c.padTokenId, 128255);
  const t = expectedTensors(c);
  assert.deepEqual(t.get("score.weight"), [1, 3072]);
  assert.ok(!t.has("lm_head.weight"));
  assert.deepEqual(parseLlamaConfig(toHfConfigJson(c), "x"), c);
  // defaults: head_dim from hidden/heads, kv heads = heads, single eos id
  const d = parseLlamaConfig({
    vocab_size: 10,
    hidden_size: 12,
    intermediate_size: 5,
    num_hidden_layers: 1,
    num_attention_heads: 3,
    eos_token_id: 2,
  }, "d");
  assert.equal(d.headDim, 4);
  assert.equal(d.numKvHeads, 3);
  assert.deepEqual(d.eosTokenIds, [2]);
  assert.equal(d.ropeScaling, null);
  assert.equal(d.ropeTheta, 10000);
  assert.equal(d.tieWordEmbeddings, false);
  assert.ok(expectedTensors(d).has("lm_head.weight"));
  const tiny = tinyTestConfig({ ropeScaling: LLAMA_32_3B_SCALING, tieWordEmbeddings: true });
  assert.deepEqual(parseLlamaConfig(toHfConfigJson(tiny), "tiny"), tiny);
});

const LLAMA_32_3B_SCALING = {
  factor: 32,
  lowFreqFactor: 1,
  highFreqFactor: 4,
  originalMaxPositionEmbeddings: 8192,
};

Deno.test("every unsupported or malformed field is refused by name", () => {
  const refusals: [Record<string, unknown>, string][] = [
    [{ model_type: "mistral" }, "model_type"],
    [{ architectures: ["LlamaForTokenClassification"] }, "architectures"],
    [{ architectures: "LlamaForCausalLM" }, "architectures"],
    [{ hidden_act: "gelu" }, "hidden_act"],
    [{ attention_bias: true }, "attention_bias"],
    [{ mlp_bias: true }, "mlp_bias"],
    [{ vocab_size: undefined }, "vocab_size"],
    [{ vocab_size: 0 }, "vocab_size"],
    [{ hidden_size: 3072.5 }, "hidden_size"],
    [{ intermediate_size: "8192" }, "intermediate_size"],
    [{ num_hidden_layers: -1 }, "num_hidden_layers"],
    [{ num_attention_heads: 0 }, "num_attention_heads"],
    [{ num_key_value_heads: 7 }, "num_key_value_heads"],
    [{ head_dim: 127 }, "head_dim"],
    [{ head_dim: undefined, hidden_size: 3001 }, "hidden_size"],
    [{ rms_norm_eps: -1 }, "rms_norm_eps"],
    [{ rope_theta: "big" }, "rope_theta"],
    [{ rope_scaling: { rope_type: "linear", factor: 2 } }, "rope_scaling.rope_type"],
    [{ rope_scaling: { type: "dynamic", factor: 2 } }, "rope_scaling.rope_type"],
    [{ rope_scaling: { rope_type: "yarn", factor: 2 } }, "rope_scaling.rope_type"],
    [{ rope_scaling: { ...LLAMA_32_3B.rope_scaling, factor: 0 } }, "rope_scaling.factor"],
    [{
      rope_scaling: { ...LLAMA_32_3B.rope_scaling, low_freq_factor: undefined },
    }, "rope_scaling.low_freq_factor"],
    [{ rope_scaling: { ...LLAMA_32_3B.rope_scaling, high_freq_factor: 1 } }, "high_freq_factor"],
    [{ rope_scaling: 3 }, "rope_scaling"],
    [{ max_position_embeddings: 0 }, "max_position_embeddings"],
    [{ tie_word_embeddings: "yes" }, "tie_word_embeddings"],
    [{ eos_token_id: [128001, -1] }, "eos_token_id[1]"],
    [{ eos_token_id: [200000] }, "eos_token_id"],
    [{ bos_token_id: 1.5 }, "bos_token_id"],
    [{ pad_token_id: 128256 }, "pad_token_id"],
    [{ num_labels: 0 }, "num_labels"],
    [{ id2label: {} }, "id2label"],
    [{ torch_dtype: 16 }, "torch_dtype"],
  ];
  for (const [patch, field] of refusals) {
    const json = { ...LLAMA_32_3B, ...patch };
    assert.throws(() => parseLlamaConfig(json, "m/config.json"), (e: Error) => {
      assert.ok(e instanceof ModelFormatError, `${JSON.stringify(patch)}: ${e}`);
      assert.ok(
        e.message.startsWith("m/config.json: ") && e.message.includes(field),
        `${JSON.stringify(patch)} gave ${e.message}`,
      );
      return true;
    });
  }
  assert.throws(() => parseLlamaConfig([1], "arr.json"), /arr\.json.*not a JSON object/);
  // "default" rope scaling means none
  assert.equal(
    parseLlamaConfig({ ...LLAMA_32_3B, rope_scaling: { rope_type: "default" } }, "x").ropeScaling,
    null,
  );
});

Deno.test("loadLlamaConfig names a missing or invalid file", async () => {
  const dir = await Deno.makeTempDir();
  await assert.rejects(loadLlamaConfig(dir), (e: Error) => {
    assert.ok(e instanceof ModelFormatError && e.message.includes(`${dir}/config.json`));
    return true;
  });
  await Deno.writeTextFile(`${dir}/config.json`, "{ nope");
  await assert.rejects(loadLlamaConfig(dir), /config\.json: invalid JSON/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("checkTensors names missing, misshapen and extra tensors", async () => {
  const root = await Deno.makeTempDir();
  const config = tinyTestConfig();
  await writeRandomModel(`${root}/m`, config, { dtype: "F32", seed: 1, shards: 2 });
  const ckpt = await openCheckpoint(`${root}/m`);
  checkTensors(config, ckpt);
  assert.deepEqual(await loadLlamaConfig(`${root}/m`), config);
  // The same files seen through a different config.
  const fails = (c: LlamaConfig, ...parts: string[]) =>
    assert.throws(() => checkTensors(c, ckpt), (e: Error) => {
      assert.ok(e instanceof ModelFormatError);
      for (const p of parts) assert.ok(e.message.includes(p), `${e.message} lacks ${p}`);
      return true;
    });
  fails({ ...config, numLayers: 3 }, "missing model.layers.2.input_layernorm.weight");
  fails({ ...config, numLayers: 1 }, "unexpected tensor model.layers.1.mlp.up_proj.weight");
  fails({ ...config, intermediateSize: 40 }, "model.layers.0.mlp.gate_proj.weight", "[48,32]");
  fails({ ...config, architecture: "LlamaForSequenceClassification" }, "missing score.weight");
  // A tied config tolerates a (duplicate) lm_head of the right shape.
  checkTensors({ ...config, tieWordEmbeddings: true }, ckpt);
  await Deno.remove(root, { recursive: true });
});
