/**
 * The ONNX graph of an HF Llama: LlamaForCausalLM with past key/values (Optimum's layout, so
 * ONNX generation tooling can drive it) or LlamaForSequenceClassification (a reward model).
 *
 * Semantics are transformers' modeling_llama.py, op by op: embedding Gather; per layer
 * RMSNorm (x * rsqrt(mean(x²) + eps) * w), q/k/v projections, RoPE on q and k with the config's
 * inverse frequencies (llama3 scaling included, see rope.ts) at `position_ids`, the new k/v
 * appended to the past, grouped-query attention (each kv head serves numHeads/numKvHeads query
 * heads, as repeat_kv does) with scores scaled by 1/sqrt(head_dim), a causal mask at the cache
 * position and the padding mask from `attention_mask`, softmax in f32, o projection, residual;
 * RMSNorm, SiLU-gated MLP, residual; final RMSNorm and the LM head (the embedding when tied) or
 * the score head pooled at the last non-padding token.
 *
 * Inputs and outputs (Optimum's names; `batch_size`, `sequence_length`, `past_sequence_length`
 * and `total_sequence_length` = past + sequence are symbolic):
 * - causal LM: `input_ids`, `attention_mask` [batch, total], `position_ids` [batch, sequence]
 *   (int64), `past_key_values.{i}.key|value` [batch, kv heads, past, head_dim] (f32; past may
 *   be 0) -> `logits` [batch, sequence, vocab], `present.{i}.key|value` [batch, kv heads,
 *   total, head_dim].
 * - sequence classification: `input_ids`, `attention_mask` [batch, sequence] -> `logits`
 *   [batch, num_labels], read (as HF does) at the last token that is not `pad_token_id`, or at
 *   the last position when the config has no pad id.
 *
 * Weight matrices are stored transposed ([in, out], what MatMul takes), f32 or f16; in f16 each is
 * widened by a Cast node so the arithmetic stays f32. Norm weights and constants are always f32.
 *
 * @module
 */
import { expectedTensors, isNormWeight, type LlamaConfig } from "../model/config.ts";
import { type Dim, ElemType, GraphBuilder } from "./graph.ts";
import { hfRopeInvFreq } from "./rope.ts";

/** How weight matrices are stored in the exported file. */
export type OnnxWeightDtype = "f32" | "f16";

/** The ONNX opset the graph is written for (every op used is in the default domain). */
export const OPSET = 17;
/** The ONNX IR version that goes with {@link OPSET}. */
export const IR_VERSION = 8;

/** One weight initializer of the graph and the HF tensor its values come from. */
export interface WeightInit {
  /** Initializer name in the graph. */
  name: string;
  /** HF tensor name in the checkpoint. */
  source: string;
  /** The HF shape of the source tensor. */
  sourceShape: number[];
  /** ONNX dims of the initializer ([in, out] for a transposed matrix). */
  dims: number[];
  /** True: the HF [out, in] matrix is stored transposed. */
  transpose: boolean;
  /** Element type stored. */
  dtype: OnnxWeightDtype;
}

/** A built graph: the nodes and small constants, and the weights the exporter fills in. */
export interface LlamaGraph {
  graph: GraphBuilder;
  weights: WeightInit[];
}

/** Smallest f32, HF's mask value (torch.finfo(torch.float32).min). */
const F32_MIN = -3.4028234663852886e38;

/** Builds the graph of `config` with weight matrices stored as `dtype`. */
export function buildLlamaGraph(config: LlamaConfig, dtype: OnnxWeightDtype = "f32"): LlamaGraph {
  const c = config;
  const g = new GraphBuilder();
  const weights: WeightInit[] = [];
  const shapes = expectedTensors(c);
  const H = c.numHeads, G = c.numKvHeads, hd = c.headDim, nRep = H / G, L = c.numLayers;
  const causal = c.architecture === "LlamaForCausalLM";

  // A weight as an f32 value: matrices transposed for MatMul (and widened when stored as f16).
  const used = new Map<string, string>();
  const weight = (hfName: string, transpose: boolean): string => {
    const key = `${hfName}:${transpose}`;
    const known = used.get(key);
    if (known) return known;
    const shape = shapes.get(hfName);
    if (!shape) throw new Error(`onnx export: no tensor ${hfName} in this config`);
    const norm = isNormWeight(hfName);
    const stored: OnnxWeightDtype = norm ? "f32" : dtype;
    const name = g.claim(transpose ? `${hfName}.T` : hfName);
    weights.push({
      name,
      source: hfName,
      sourceShape: shape,
      dims: transpose ? [shape[1], shape[0]] : shape,
      transpose,
      dtype: stored,
    });
    const value = stored === "f16"
      ? g.node("Cast", [name], { to: ElemType.FLOAT }, `${name}.f32`)
      : name;
    used.set(key, value);
    return value;
  };
  const matmul = (x: string, hfName: string, hint: string) =>
    g.node("MatMul", [x, weight(hfName, true)], {}, hint);

  const rmsNorm = (x: string, hfName: string, hint: string): string => {
    const sq = g.node("Mul", [x, x], {}, `${hint}.sq`);
    const variance = g.node("ReduceMean", [sq], { axes: [-1], keepdims: 1 }, `${hint}.variance`);
    const std = g.node(
      "Sqrt",
      [g.node("Add", [variance, g.float(c.rmsNormEps)])],
      {},
      `${hint}.std`,
    );
    const normed = g.node("Mul", [x, g.node("Reciprocal", [std], {}, `${hint}.rstd`)]);
    return g.node("Mul", [weight(hfName, false), normed], {}, hint);
  };

  // ---- inputs
  const seqDims: Dim[] = ["batch_size", "sequence_length"];
  const inputIds = g.input("input_ids", ElemType.INT64, seqDims);
  const attentionMask = g.input(
    "attention_mask",
    ElemType.INT64,
    causal ? ["batch_size", "total_sequence_length"] : seqDims,
  );
  const positionIds = causal ? g.input("position_ids", ElemType.INT64, seqDims) : "";
  const past: { key: string; value: string }[] = [];
  if (causal) {
    for (let l = 0; l < L; l++) {
      const dims: Dim[] = ["batch_size", G, "past_sequence_length", hd];
      past.push({
        key: g.input(`past_key_values.${l}.key`, ElemType.FLOAT, dims),
        value: g.input(`past_key_values.${l}.value`, ElemType.FLOAT, dims),
      });
    }
  }

  // ---- lengths: S new tokens, T = past + S keys, past P = T - S
  const scalarOf = (v: string, hint: string) => g.node("Squeeze", [v, g.int64([0])], {}, hint);
  const seqLen = g.node("Shape", [inputIds], { start: 1, end: 2 }, "seq_len");
  const totalLen = g.node("Shape", [attentionMask], { start: 1, end: 2 }, "total_len");
  const S = scalarOf(seqLen, "S");
  const T = scalarOf(totalLen, "T");
  const P = g.node("Sub", [T, S], {}, "P");
  const one = g.int64([1], true), zero = g.int64([0], true);

  // ---- positions and RoPE tables: cos/sin [B, 1, S, hd]
  const positions = causal
    ? positionIds
    : g.node("Unsqueeze", [g.node("Range", [zero, S, one], {}, "positions.range"), g.int64([0])]);
  const invFreq = g.fresh("rope.inv_freq");
  g.initializers.push({
    name: invFreq,
    dataType: ElemType.FLOAT,
    dims: [hd / 2],
    floatData: Array.from(hfRopeInvFreq(c)),
  });
  const posF = g.node("Cast", [positions], { to: ElemType.FLOAT }, "positions.f32");
  const freqs = g.node(
    "Mul",
    [g.node("Unsqueeze", [posF, g.int64([2])]), invFreq],
    {},
    "rope.freqs",
  );
  const emb = g.node("Concat", [freqs, freqs], { axis: -1 }, "rope.emb");
  const cos = g.node("Unsqueeze", [g.node("Cos", [emb]), g.int64([1])], {}, "rope.cos");
  const sin = g.node("Unsqueeze", [g.node("Sin", [emb]), g.int64([1])], {}, "rope.sin");
  const halfSplit = g.int64([hd / 2, hd / 2]);
  const rope = (x: string, hint: string): string => {
    const [x1, x2] = g.nodeN("Split", [x, halfSplit], { attrs: { axis: -1 }, outputs: 2 });
    const rotated = g.node("Concat", [g.node("Neg", [x2]), x1], { axis: -1 });
    return g.node(
      "Add",
      [g.node("Mul", [x, cos]), g.node("Mul", [rotated, sin])],
      {},
      hint,
    );
  };

  // ---- attention mask [B, 1, nRep*S, T]: key j is visible to query i (at cache position
  // P + i) when j <= P + i and attention_mask[b, j] = 1; query rows repeat per head of a group.
  const qPos = g.node("Unsqueeze", [g.node("Range", [P, T, one]), g.int64([1])], {}, "mask.qpos");
  const kPos = g.node("Range", [zero, T, one], {}, "mask.kpos");
  const causalMask = g.node("LessOrEqual", [kPos, qPos], {}, "mask.causal");
  const padMask = g.node(
    "Unsqueeze",
    [g.node("Cast", [attentionMask], { to: ElemType.BOOL }), g.int64([1, 2])],
    {},
    "mask.padding",
  );
  const allowed = g.node("And", [causalMask, padMask], {}, "mask.allowed");
  const allowedRep = nRep === 1
    ? allowed
    : g.node("Concat", Array(nRep).fill(allowed), { axis: 2 }, "mask.allowed_rep");
  const maskFill = g.float(F32_MIN);
  const scale = g.float(1 / Math.sqrt(hd));

  const qShape = g.int64([0, 0, H, hd]), kvShape = g.int64([0, 0, G, hd]);
  const groupShape = g.int64([0, G, -1, hd]), headShape = g.int64([0, H, -1, hd]);
  const mergeShape = g.int64([0, 0, H * hd]);
  const toHeads = [0, 2, 1, 3];

  // ---- the trunk
  let x = g.node("Gather", [weight("model.embed_tokens.weight", false), inputIds], {}, "embed");
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.`, n = `layers.${l}`;
    const h = rmsNorm(x, p + "input_layernorm.weight", `${n}.input_norm`);
    const heads = (v: string, shape: string, hint: string) =>
      g.node("Transpose", [g.node("Reshape", [v, shape])], { perm: toHeads }, hint);
    const q = rope(
      heads(matmul(h, p + "self_attn.q_proj.weight", `${n}.q_proj`), qShape, `${n}.q`),
      `${n}.q_rot`,
    );
    const kNew = rope(
      heads(matmul(h, p + "self_attn.k_proj.weight", `${n}.k_proj`), kvShape, `${n}.k`),
      `${n}.k_rot`,
    );
    const vNew = heads(matmul(h, p + "self_attn.v_proj.weight", `${n}.v_proj`), kvShape, `${n}.v`);
    let k = kNew, v = vNew;
    if (causal) {
      k = g.nodeN("Concat", [past[l].key, kNew], {
        attrs: { axis: 2 },
        outputs: [`present.${l}.key`],
      })[0];
      v = g.nodeN("Concat", [past[l].value, vNew], {
        attrs: { axis: 2 },
        outputs: [`present.${l}.value`],
      })[0];
    }
    // Query heads of one kv group side by side: [B, G, nRep*S, hd] against that group's keys.
    const qg = g.node("Reshape", [q, groupShape], {}, `${n}.q_grouped`);
    const kT = g.node("Transpose", [k], { perm: [0, 1, 3, 2] }, `${n}.k_t`);
    const scores = g.node("Mul", [g.node("MatMul", [qg, kT]), scale], {}, `${n}.scores`);
    const masked = g.node("Where", [allowedRep, scores, maskFill], {}, `${n}.scores_masked`);
    const probs = g.node("Softmax", [masked], { axis: -1 }, `${n}.probs`);
    const ctx = g.node("Reshape", [g.node("MatMul", [probs, v]), headShape], {}, `${n}.ctx`);
    const ctxT = g.node("Transpose", [ctx], { perm: toHeads });
    const merged = g.node("Reshape", [ctxT, mergeShape], {}, `${n}.ctx_merged`);
    const attnOut = matmul(merged, p + "self_attn.o_proj.weight", `${n}.o_proj`);
    x = g.node("Add", [x, attnOut], {}, `${n}.resid_attn`);
    const h2 = rmsNorm(x, p + "post_attention_layernorm.weight", `${n}.post_norm`);
    const gate = matmul(h2, p + "mlp.gate_proj.weight", `${n}.gate`);
    const up = matmul(h2, p + "mlp.up_proj.weight", `${n}.up`);
    const act = g.node("Mul", [gate, g.node("Sigmoid", [gate])], {}, `${n}.silu`);
    const down = matmul(g.node("Mul", [act, up]), p + "mlp.down_proj.weight", `${n}.down`);
    x = g.node("Add", [x, down], {}, `${n}.resid_mlp`);
  }
  const xf = rmsNorm(x, "model.norm.weight", "final_norm");

  if (causal) {
    const head = c.tieWordEmbeddings
      ? g.node(
        "Transpose",
        [weight("model.embed_tokens.weight", false)],
        { perm: [1, 0] },
        "lm_head.tied",
      )
      : weight("lm_head.weight", true);
    g.nodeN("MatMul", [xf, head], { outputs: ["logits"] });
    g.output("logits", ElemType.FLOAT, ["batch_size", "sequence_length", c.vocabSize]);
    for (let l = 0; l < L; l++) {
      for (const kind of ["key", "value"]) {
        g.output(`present.${l}.${kind}`, ElemType.FLOAT, [
          "batch_size",
          G,
          "total_sequence_length",
          hd,
        ]);
      }
    }
  } else {
    // HF: score every position, then take the last index whose token is not pad_token_id.
    const allScores = matmul(xf, "score.weight", "score.all");
    const isToken = c.padTokenId === null
      ? g.node("GreaterOrEqual", [inputIds, zero], {}, "pool.is_token")
      : g.node(
        "Not",
        [g.node("Equal", [inputIds, g.int64([c.padTokenId], true)])],
        {},
        "pool.is_token",
      );
    const index = g.node(
      "Mul",
      [g.node("Cast", [isToken], { to: ElemType.INT64 }), g.node("Range", [zero, S, one])],
      {},
      "pool.token_index",
    );
    const last = g.node("ArgMax", [index], { axis: 1, keepdims: 1 }, "pool.last");
    const gatherIdx = g.node(
      "Tile",
      [g.node("Unsqueeze", [last, g.int64([2])]), g.int64([1, 1, c.numLabels])],
      {},
      "pool.index",
    );
    const pooled = g.node("GatherElements", [allScores, gatherIdx], { axis: 1 }, "pool.scores");
    g.nodeN("Squeeze", [pooled, g.int64([1])], { outputs: ["logits"] });
    g.output("logits", ElemType.FLOAT, ["batch_size", c.numLabels]);
  }
  return { graph: g, weights };
}
