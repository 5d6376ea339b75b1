/**
 * An independent reference of HF `LlamaForCausalLM` in plain TypeScript with f64 math, for tests.
 *
 * Written straight from transformers' modeling_llama.py (LlamaRMSNorm, LlamaRotaryEmbedding with
 * `_compute_llama3_parameters`, rotate_half, repeat_kv, eager attention with a causal mask,
 * LlamaMLP = down(silu(gate(x)) * up(x)), tied or separate lm_head). It shares no code with the
 * GPU path: it parses config.json and the safetensors files itself and widens BF16/F16 itself.
 *
 * @module
 */

/** The config fields the reference needs, read from HF config.json. */
export interface RefConfig {
  vocabSize: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  eps: number;
  theta: number;
  scaling: null | { factor: number; low: number; high: number; original: number };
  tied: boolean;
}

/** Reads the fields of an HF config.json object. */
export function refConfigFromHf(j: Record<string, unknown>): RefConfig {
  const n = (k: string) => {
    const v = j[k];
    if (typeof v !== "number") throw new Error(`reference: config.${k} missing`);
    return v;
  };
  const heads = n("num_attention_heads");
  const rs = j.rope_scaling as Record<string, number> | null | undefined;
  return {
    vocabSize: n("vocab_size"),
    hidden: n("hidden_size"),
    intermediate: n("intermediate_size"),
    layers: n("num_hidden_layers"),
    heads,
    kvHeads: typeof j.num_key_value_heads === "number" ? j.num_key_value_heads : heads,
    headDim: typeof j.head_dim === "number" ? j.head_dim : n("hidden_size") / heads,
    eps: typeof j.rms_norm_eps === "number" ? j.rms_norm_eps : 1e-6,
    theta: typeof j.rope_theta === "number" ? j.rope_theta : 10000,
    scaling: rs
      ? {
        factor: rs.factor,
        low: rs.low_freq_factor,
        high: rs.high_freq_factor,
        original: rs.original_max_position_embeddings,
      }
      : null,
    tied: j.tie_word_embeddings === true,
  };
}

function widenBf16(u: number): number {
  const b = new DataView(new ArrayBuffer(4));
  b.setUint32(0, u << 16, true);
  return b.getFloat32(0, true);
}

function widenF16(u: number): number {
  const sign = u & 0x8000 ? -1 : 1;
  const e = (u >> 10) & 0x1f, m = u & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** Parses one safetensors file into f64 arrays (no validation beyond what the tests need). */
export async function readSafetensorsF64(path: string): Promise<Map<string, Float64Array>> {
  const bytes = await Deno.readFile(path);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hlen = Number(dv.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + hlen)));
  const base = 8 + hlen;
  const out = new Map<string, Float64Array>();
  for (const [name, t] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const { dtype, data_offsets: [b, e] } = t as { dtype: string; data_offsets: number[] };
    const size = dtype === "F32" ? 4 : 2;
    const n = (e - b) / size;
    const a = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const at = base + b + i * size;
      if (dtype === "F32") a[i] = dv.getFloat32(at, true);
      else if (dtype === "BF16") a[i] = widenBf16(dv.getUint16(at, true));
      else if (dtype === "F16") a[i] = widenF16(dv.getUint16(at, true));
      else throw new Error(`reference: dtype ${dtype}`);
    }
    out.set(name, a);
  }
  return out;
}

/** Reads config.json and all weights (single file or shards) of an HF model folder. */
export async function readModelF64(
  dir: string,
): Promise<{ config: RefConfig; weights: Map<string, Float64Array> }> {
  const config = refConfigFromHf(JSON.parse(await Deno.readTextFile(`${dir}/config.json`)));
  let files = ["model.safetensors"];
  try {
    const idx = JSON.parse(await Deno.readTextFile(`${dir}/model.safetensors.index.json`));
    files = [...new Set(Object.values(idx.weight_map as Record<string, string>))];
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const weights = new Map<string, Float64Array>();
  for (const f of files) {
    for (const [k, v] of await readSafetensorsF64(`${dir}/${f}`)) weights.set(k, v);
  }
  return { config, weights };
}

/** HF `_compute_llama3_parameters` (or the plain inverse frequencies), in f64. */
export function refInvFreq(c: RefConfig): Float64Array {
  const half = c.headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / c.theta ** ((2 * i) / c.headDim);
  const s = c.scaling;
  if (!s) return inv;
  const lowWavelen = s.original / s.low, highWavelen = s.original / s.high;
  for (let i = 0; i < half; i++) {
    const wavelen = (2 * Math.PI) / inv[i];
    if (wavelen > lowWavelen) inv[i] = inv[i] / s.factor;
    else if (wavelen >= highWavelen) {
      const smooth = (s.original / wavelen - s.low) / (s.high - s.low);
      inv[i] = (1 - smooth) * (inv[i] / s.factor) + smooth * inv[i];
    }
  }
  return inv;
}

function get(w: Map<string, Float64Array>, name: string): Float64Array {
  const t = w.get(name);
  if (!t) throw new Error(`reference: missing tensor ${name}`);
  return t;
}

function rmsnorm(x: Float64Array, w: Float64Array, T: number, D: number, eps: number) {
  const y = new Float64Array(T * D);
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let i = 0; i < D; i++) ss += x[t * D + i] ** 2;
    const r = 1 / Math.sqrt(ss / D + eps);
    for (let i = 0; i < D; i++) y[t * D + i] = w[i] * (x[t * D + i] * r);
  }
  return y;
}

/** y[T,N] = x[T,K] · w[N,K]^T (nn.Linear without bias). */
function linear(x: Float64Array, w: Float64Array, T: number, K: number, N: number) {
  const y = new Float64Array(T * N);
  for (let t = 0; t < T; t++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[t * K + k] * w[n * K + k];
      y[t * N + n] = s;
    }
  }
  return y;
}

/** apply_rotary_pos_emb with rotate_half, in place, over [T, nh, hd]. */
function rope(x: Float64Array, T: number, nh: number, hd: number, inv: Float64Array) {
  const half = hd / 2;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nh; h++) {
      const o = (t * nh + h) * hd;
      for (let i = 0; i < half; i++) {
        const a = t * inv[i], c = Math.cos(a), s = Math.sin(a);
        const x1 = x[o + i], x2 = x[o + i + half];
        x[o + i] = x1 * c - x2 * s;
        x[o + i + half] = x2 * c + x1 * s;
      }
    }
  }
}

/** Logits [T, vocab] of one sequence (positions 0..T-1), f64. */
export function refLogits(
  c: RefConfig,
  w: Map<string, Float64Array>,
  tokens: number[],
): Float64Array {
  const T = tokens.length, D = c.hidden, hd = c.headDim, H = c.heads, G = c.kvHeads;
  const emb = get(w, "model.embed_tokens.weight");
  const inv = refInvFreq(c);
  let x = new Float64Array(T * D);
  tokens.forEach((tok, t) => x.set(emb.subarray(tok * D, tok * D + D), t * D));
  for (let l = 0; l < c.layers; l++) {
    const p = `model.layers.${l}.`;
    const xn = rmsnorm(x, get(w, p + "input_layernorm.weight"), T, D, c.eps);
    const q = linear(xn, get(w, p + "self_attn.q_proj.weight"), T, D, H * hd);
    const k = linear(xn, get(w, p + "self_attn.k_proj.weight"), T, D, G * hd);
    const v = linear(xn, get(w, p + "self_attn.v_proj.weight"), T, D, G * hd);
    rope(q, T, H, hd, inv);
    rope(k, T, G, hd, inv);
    const att = new Float64Array(T * H * hd);
    const scale = hd ** -0.5;
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / G)); // repeat_kv
      for (let t = 0; t < T; t++) {
        const s = new Float64Array(t + 1);
        let mx = -Infinity;
        for (let j = 0; j <= t; j++) {
          let d = 0;
          for (let i = 0; i < hd; i++) d += q[(t * H + h) * hd + i] * k[(j * G + g) * hd + i];
          s[j] = d * scale;
          mx = Math.max(mx, s[j]);
        }
        let z = 0;
        for (let j = 0; j <= t; j++) z += s[j] = Math.exp(s[j] - mx);
        for (let j = 0; j <= t; j++) {
          for (let i = 0; i < hd; i++) {
            att[(t * H + h) * hd + i] += (s[j] / z) * v[(j * G + g) * hd + i];
          }
        }
      }
    }
    const o = linear(att, get(w, p + "self_attn.o_proj.weight"), T, H * hd, D);
    const h1 = x.map((xi, i) => xi + o[i]);
    const xn2 = rmsnorm(h1, get(w, p + "post_attention_layernorm.weight"), T, D, c.eps);
    const I = c.intermediate;
    const gate = linear(xn2, get(w, p + "mlp.gate_proj.weight"), T, D, I);
    const up = linear(xn2, get(w, p + "mlp.up_proj.weight"), T, D, I);
    const act = gate.map((gi, i) => (gi / (1 + Math.exp(-gi))) * up[i]);
    const down = linear(act, get(w, p + "mlp.down_proj.weight"), T, I, D);
    x = h1.map((hi, i) => hi + down[i]);
  }
  const xf = rmsnorm(x, get(w, "model.norm.weight"), T, D, c.eps);
  const head = c.tied ? emb : get(w, "lm_head.weight");
  return linear(xf, head, T, D, c.vocabSize);
}

/** log_softmax(logits[t])[target] for every row. */
export function refTokenLogprobs(logits: Float64Array, V: number, targets: number[]): number[] {
  return targets.map((tgt, t) => {
    const row = logits.subarray(t * V, t * V + V);
    const mx = row.reduce((a, b) => Math.max(a, b), -Infinity);
    let z = 0;
    for (const x of row) z += Math.exp(x - mx);
    return row[tgt] - mx - Math.log(z);
  });
}

/** Mean next-token negative log-likelihood (position t predicts t+1; T-1 terms). */
export function refMeanNll(c: RefConfig, w: Map<string, Float64Array>, tokens: number[]): number {
  const logits = refLogits(c, w, tokens);
  const lp = refTokenLogprobs(logits, c.vocabSize, tokens.slice(1));
  return -lp.reduce((a, b) => a + b, 0) / lp.length;
}

/** Deterministic token ids in 0..V-1. */
export function someTokens(n: number, V: number, seed: number): number[] {
  const out: number[] = [];
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out.push((s >>> 8) % V);
  }
  return out;
}
