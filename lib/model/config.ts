/**
 * Llama model configuration: parsing and validating an HF `config.json`, the tensor names and
 * shapes it implies, and writing it back in a form HF loaders accept.
 *
 * Only what our kernels implement is accepted (Llama 3.x: RMSNorm, SiLU-gated MLP, GQA, RoPE
 * with optional llama3 scaling, no biases); anything else is refused with a message naming the
 * file and the field, rather than silently computing a different model.
 *
 * @module
 */
import { type Checkpoint } from "./safetensors/checkpoint_folder.ts";
import { ModelFormatError } from "./safetensors/format.ts";
import { isPlainObject } from "../util/plain_object.ts";

/** A validated Llama configuration (camelCase view of HF's config.json). */
export interface LlamaConfig {
  architecture: "LlamaForCausalLM" | "LlamaForSequenceClassification";
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: null | {
    factor: number;
    lowFreqFactor: number;
    highFreqFactor: number;
    originalMaxPositionEmbeddings: number;
  };
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  bosTokenId: number | null;
  eosTokenIds: number[];
  padTokenId: number | null;
  /** Rows of `score.weight` for sequence classification (HF default 2; reward models use 1). */
  numLabels: number;
  torchDtype: string | null;
}

const ARCHITECTURES = ["LlamaForCausalLM", "LlamaForSequenceClassification"] as const;

/**
 * Validates a parsed config.json. `source` (usually the file path) prefixes every error.
 * Defaults follow transformers' LlamaConfig where a field is absent.
 */
export function parseLlamaConfig(json: unknown, source: string): LlamaConfig {
  const bad = (field: string, msg: string): never => {
    throw new ModelFormatError(`${source}: ${field} ${msg}`);
  };
  if (!isPlainObject(json)) return bad("(root)", "is not a JSON object");
  const j = json;
  const has = (k: string) => j[k] !== undefined && j[k] !== null;
  const posInt = (k: string, dflt?: number): number => {
    if (!has(k)) return dflt !== undefined ? dflt : bad(k, "is missing");
    const v = j[k];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
      return bad(k, `must be a positive integer, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const posNum = (k: string, dflt: number): number => {
    if (!has(k)) return dflt;
    const v = j[k];
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      return bad(k, `must be a positive number, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const tokenId = (k: string, v: unknown): number => {
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
      return bad(k, `must be a non-negative integer token id, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const optTokenId = (k: string): number | null => has(k) ? tokenId(k, j[k]) : null;

  if (has("model_type") && j.model_type !== "llama") {
    bad("model_type", `${JSON.stringify(j.model_type)} is not supported (only "llama")`);
  }
  let architecture: LlamaConfig["architecture"] = "LlamaForCausalLM";
  if (has("architectures")) {
    const a = j.architectures;
    if (!Array.isArray(a) || a.length !== 1 || typeof a[0] !== "string") {
      bad("architectures", `must be a list of one name, got ${JSON.stringify(a)}`);
    }
    const name = (a as string[])[0];
    if (!(ARCHITECTURES as readonly string[]).includes(name)) {
      bad(
        "architectures",
        `${JSON.stringify(name)} is not supported (${ARCHITECTURES.join(", ")})`,
      );
    }
    architecture = name as LlamaConfig["architecture"];
  }
  if (has("hidden_act") && j.hidden_act !== "silu") {
    bad("hidden_act", `${JSON.stringify(j.hidden_act)} is not supported (only "silu")`);
  }
  for (const k of ["attention_bias", "mlp_bias"]) {
    if (has(k) && j[k] !== false) bad(k, `${JSON.stringify(j[k])} is not supported (only false)`);
  }
  const vocabSize = posInt("vocab_size");
  const hiddenSize = posInt("hidden_size");
  const intermediateSize = posInt("intermediate_size");
  const numLayers = posInt("num_hidden_layers");
  const numHeads = posInt("num_attention_heads");
  const numKvHeads = posInt("num_key_value_heads", numHeads);
  if (numHeads % numKvHeads !== 0) {
    bad("num_key_value_heads", `${numKvHeads} does not divide num_attention_heads ${numHeads}`);
  }
  if (!has("head_dim") && hiddenSize % numHeads !== 0) {
    bad("hidden_size", `${hiddenSize} is not a multiple of num_attention_heads ${numHeads}`);
  }
  const headDim = posInt("head_dim", hiddenSize / numHeads);
  if (headDim % 2 !== 0) bad("head_dim", `${headDim} must be even for rotary embeddings`);
  const rmsNormEps = posNum("rms_norm_eps", 1e-6);
  const ropeTheta = posNum("rope_theta", 10000);
  const maxPositionEmbeddings = posInt("max_position_embeddings", 2048);

  let ropeScaling: LlamaConfig["ropeScaling"] = null;
  if (has("rope_scaling")) {
    const r = j.rope_scaling;
    if (!isPlainObject(r)) return bad("rope_scaling", "must be an object or null");
    const type = r.rope_type ?? r.type;
    if (type === "default") ropeScaling = null;
    else if (type !== "llama3") {
      bad(
        "rope_scaling.rope_type",
        `${JSON.stringify(type)} is not supported (only "llama3" or "default")`,
      );
    } else {
      const num = (k: string): number => {
        const v = r[k];
        if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
          return bad(`rope_scaling.${k}`, `must be a positive number, got ${JSON.stringify(v)}`);
        }
        return v;
      };
      ropeScaling = {
        factor: num("factor"),
        lowFreqFactor: num("low_freq_factor"),
        highFreqFactor: num("high_freq_factor"),
        originalMaxPositionEmbeddings: num("original_max_position_embeddings"),
      };
      if (!Number.isSafeInteger(ropeScaling.originalMaxPositionEmbeddings)) {
        bad("rope_scaling.original_max_position_embeddings", "must be an integer");
      }
      if (ropeScaling.highFreqFactor <= ropeScaling.lowFreqFactor) {
        bad("rope_scaling.high_freq_factor", "must exceed low_freq_factor");
      }
    }
  }

  let tieWordEmbeddings = false;
  if (has("tie_word_embeddings")) {
    if (typeof j.tie_word_embeddings !== "boolean") bad("tie_word_embeddings", "must be a boolean");
    tieWordEmbeddings = j.tie_word_embeddings as boolean;
  }
  let eosTokenIds: number[] = [];
  if (has("eos_token_id")) {
    const e = j.eos_token_id;
    eosTokenIds = Array.isArray(e)
      ? e.map((x, i) => tokenId(`eos_token_id[${i}]`, x))
      : [tokenId("eos_token_id", e)];
  }
  const bosTokenId = optTokenId("bos_token_id");
  const padTokenId = optTokenId("pad_token_id");
  for (const [k, v] of [["bos_token_id", bosTokenId], ["pad_token_id", padTokenId]] as const) {
    if (v !== null && v >= vocabSize) bad(k, `${v} is outside the vocabulary (${vocabSize})`);
  }
  eosTokenIds.forEach((v) => {
    if (v >= vocabSize) bad("eos_token_id", `${v} is outside the vocabulary (${vocabSize})`);
  });

  let numLabels = 2;
  if (has("num_labels")) numLabels = posInt("num_labels");
  else if (has("id2label")) {
    if (!isPlainObject(j.id2label)) bad("id2label", "must be an object");
    numLabels = Object.keys(j.id2label as object).length;
    if (numLabels === 0) bad("id2label", "is empty");
  }

  let torchDtype: string | null = null;
  const dt = j.torch_dtype ?? j.dtype;
  if (dt !== undefined && dt !== null) {
    if (typeof dt !== "string") bad("torch_dtype", "must be a string");
    torchDtype = dt as string;
  }

  return {
    architecture,
    vocabSize,
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps,
    ropeTheta,
    ropeScaling,
    maxPositionEmbeddings,
    tieWordEmbeddings,
    bosTokenId,
    eosTokenIds,
    padTokenId,
    numLabels,
    torchDtype,
  };
}

/** Reads and validates `<dir>/config.json`. */
export async function loadLlamaConfig(dir: string): Promise<LlamaConfig> {
  const path = `${dir}/config.json`;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new ModelFormatError(`${path}: cannot read (${(e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ModelFormatError(`${path}: invalid JSON (${(e as Error).message})`);
  }
  return parseLlamaConfig(json, path);
}

/**
 * HF tensor names and shapes the config implies, in a fixed order (embeddings, layers in
 * order, final norm, head). Tied models have no `lm_head.weight`; sequence classifiers have
 * `score.weight` [numLabels, hidden] instead of a head.
 */
export function expectedTensors(config: LlamaConfig): Map<string, number[]> {
  const { vocabSize: V, hiddenSize: D, intermediateSize: F, headDim: H } = config;
  const q = config.numHeads * H, kv = config.numKvHeads * H;
  const m = new Map<string, number[]>();
  m.set("model.embed_tokens.weight", [V, D]);
  for (let i = 0; i < config.numLayers; i++) {
    const p = `model.layers.${i}.`;
    m.set(p + "input_layernorm.weight", [D]);
    m.set(p + "self_attn.q_proj.weight", [q, D]);
    m.set(p + "self_attn.k_proj.weight", [kv, D]);
    m.set(p + "self_attn.v_proj.weight", [kv, D]);
    m.set(p + "self_attn.o_proj.weight", [D, q]);
    m.set(p + "post_attention_layernorm.weight", [D]);
    m.set(p + "mlp.gate_proj.weight", [F, D]);
    m.set(p + "mlp.up_proj.weight", [F, D]);
    m.set(p + "mlp.down_proj.weight", [D, F]);
  }
  m.set("model.norm.weight", [D]);
  if (config.architecture === "LlamaForSequenceClassification") {
    m.set("score.weight", [config.numLabels, D]);
  } else if (!config.tieWordEmbeddings) {
    m.set("lm_head.weight", [V, D]);
  }
  return m;
}

/** Whether a tensor name is a norm weight (initialised to ones, not random). */
export function isNormWeight(name: string): boolean {
  return name.endsWith("layernorm.weight") || name === "model.norm.weight";
}

/** Tensors a checkpoint may carry that we ignore: rotary caches, a head duplicated when tied. */
export function isIgnorableTensor(config: LlamaConfig, name: string): boolean {
  if (name.endsWith(".rotary_emb.inv_freq")) return true;
  return name === "lm_head.weight" && config.tieWordEmbeddings &&
    config.architecture === "LlamaForCausalLM";
}

/**
 * Checks that a checkpoint holds exactly the tensors the config implies, with the right
 * shapes. Throws a {@link ModelFormatError} listing every missing, misshapen and extra tensor.
 */
export function checkTensors(config: LlamaConfig, checkpoint: Checkpoint): void {
  const want = expectedTensors(config);
  const problems: string[] = [];
  for (const [name, shape] of want) {
    const got = checkpoint.tensors.get(name);
    if (!got) problems.push(`missing ${name} ${JSON.stringify(shape)}`);
    else if (JSON.stringify(got.info.shape) !== JSON.stringify(shape)) {
      problems.push(
        `${name} in ${got.file.path} has shape ${JSON.stringify(got.info.shape)}, ` +
          `config implies ${JSON.stringify(shape)}`,
      );
    }
  }
  for (const [name, { file, info }] of checkpoint.tensors) {
    if (want.has(name)) continue;
    if (isIgnorableTensor(config, name)) {
      if (name === "lm_head.weight") {
        const s = [config.vocabSize, config.hiddenSize];
        if (JSON.stringify(info.shape) !== JSON.stringify(s)) {
          problems.push(`${name} in ${file.path} has shape ${JSON.stringify(info.shape)}`);
        }
      }
      continue;
    }
    problems.push(`unexpected tensor ${name} in ${file.path}`);
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 20).join("; ");
    const more = problems.length > 20 ? `; and ${problems.length - 20} more` : "";
    throw new ModelFormatError(
      `${checkpoint.dir}: tensors do not match config.json: ${shown}${more}`,
    );
  }
}

/**
 * The config as an HF `config.json` object (snake_case, transformers' field names), suitable for
 * `JSON.stringify`. {@link parseLlamaConfig} of the result gives the config back.
 */
export function toHfConfigJson(config: LlamaConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {
    architectures: [config.architecture],
    model_type: "llama",
    attention_bias: false,
    attention_dropout: 0.0,
    mlp_bias: false,
    hidden_act: "silu",
    vocab_size: config.vocabSize,
    hidden_size: config.hiddenSize,
    intermediate_size: config.intermediateSize,
    num_hidden_layers: config.numLayers,
    num_attention_heads: config.numHeads,
    num_key_value_heads: config.numKvHeads,
    head_dim: config.headDim,
    rms_norm_eps: config.rmsNormEps,
    rope_theta: config.ropeTheta,
    rope_scaling: config.ropeScaling === null ? null : {
      rope_type: "llama3",
      factor: config.ropeScaling.factor,
      low_freq_factor: config.ropeScaling.lowFreqFactor,
      high_freq_factor: config.ropeScaling.highFreqFactor,
      original_max_position_embeddings: config.ropeScaling.originalMaxPositionEmbeddings,
    },
    max_position_embeddings: config.maxPositionEmbeddings,
    initializer_range: 0.02,
    pretraining_tp: 1,
    use_cache: true,
    tie_word_embeddings: config.tieWordEmbeddings,
    bos_token_id: config.bosTokenId,
    eos_token_id: config.eosTokenIds.length === 1 ? config.eosTokenIds[0] : config.eosTokenIds,
    pad_token_id: config.padTokenId,
  };
  if (config.torchDtype !== null) out.torch_dtype = config.torchDtype;
  if (config.eosTokenIds.length === 0) out.eos_token_id = null;
  {
    // Always written, so numLabels survives a round trip (HF derives num_labels from it).
    const id2label: Record<string, string> = {};
    const label2id: Record<string, number> = {};
    for (let i = 0; i < config.numLabels; i++) {
      id2label[String(i)] = `LABEL_${i}`;
      label2id[`LABEL_${i}`] = i;
    }
    out.id2label = id2label;
    out.label2id = label2id;
  }
  return out;
}
