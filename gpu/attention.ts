/**
 * Causal grouped-query attention over a KV cache: cache writes, the forward (one kernel for
 * prefill and decode) and the backward (training layout).
 *
 * Layouts (f32, row-major): q, out [M, nHeads, hd]; k, v [M, nKv, hd]; caches kc, vc
 * [B, S, nKv, hd]; seq, pos u32 [M]; lse [M, nHeads]. Query head h reads kv head
 * g = h / (nHeads / nKv).
 *
 * Determinism: the arithmetic of each output is fixed per (row, head), as the per-(row, head)
 * workgroup kernels below lay it out: the forward walks the keys in tiles of {@link TILE}
 * aligned at j = 0, so a row at position p does exactly the same arithmetic whether it is one of
 * many prefill rows or the only decode row of its sequence: same tiles, same per-key dot products
 * (d ascending), same tree reductions, same online-softmax updates. The backward reduces over
 * query rows (i ascending, in tiles aligned at the key) and over the heads of a group (h
 * ascending) for each key; no atomics anywhere.
 *
 * On a GPU the blocked kernels replay that arithmetic with the operands staged in workgroup
 * memory and shared: the forward (gpu/attention_blocked.ts) and dq one workgroup per (block of
 * query rows, heads of one kv group) with K/V tiles staged, the forward's one-row blocks being
 * the decode kernel (one workgroup per (sequence, kv head)); dk/dv one workgroup per (block of
 * keys, kv head) with q/dout tiles staged (both in gpu/attention_backward_blocked.ts). The
 * per-(row, head) kernels stay as their reference (tests, bench-attention) and as the fallback
 * when a block does not fit.
 *
 * On CPU adapters (`gpu.info.kernels === "serial"`) each per-(row, head) workgroup is replaced by
 * one invocation that replays its lanes' arithmetic in the same order with no barriers (barriers
 * are what make the workgroup kernels slow on lavapipe); the bits are the same. Long rows fall
 * back to the per-(row, head) workgroup kernels (llvmpipe caps an invocation's loop iterations:
 * gpu/serial.ts).
 *
 * @module
 */
import {
  BACKWARD_KV_BINDINGS_WGSL,
  BACKWARD_Q_BINDINGS_WGSL,
  FORWARD_BINDINGS_WGSL,
} from "./attention_bindings.ts";
import { f32, grid, kernel, type Recorder } from "./recorder.ts";
import { serialTreeReduceWgsl, treeReduceWgsl } from "./reduce.ts";
import type { Gpu } from "./device.ts";
import { useSerial } from "./serial.ts";
import { attentionBlocked, planBlocked } from "./attention_blocked.ts";
import { attentionBackwardBlocked, planBackwardBlocked } from "./attention_backward_blocked.ts";

/** Keys (forward, dq) or queries (dk/dv) handled per tile; also the workgroup size. */
export const TILE = 64;
/** Largest supported head_dim (workgroup arrays are sized from it). */
export const MAX_HEAD_DIM = 256;

const NEG_BIG = "-3.0e38"; // finite "minus infinity": WGSL does not promise IEEE infinities

function checkShapes(what: string, nHeads: number, nKv: number, hd: number): void {
  if (!Number.isInteger(nHeads) || !Number.isInteger(nKv) || nKv <= 0 || nHeads % nKv !== 0) {
    throw new Error(`${what}: nHeads (${nHeads}) must be a positive multiple of nKv (${nKv})`);
  }
  if (!Number.isInteger(hd) || hd <= 0 || hd > MAX_HEAD_DIM) {
    throw new Error(`${what}: head dim ${hd} must be in 1..${MAX_HEAD_DIM}`);
  }
}

const KV_STORE_WG = 256;
const KV_STORE_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> k: array<f32>;
@group(0) @binding(1) var<storage, read> v: array<f32>;
@group(0) @binding(2) var<storage, read_write> kc: array<f32>;
@group(0) @binding(3) var<storage, read_write> vc: array<f32>;
@group(0) @binding(4) var<storage, read> seq: array<u32>;
@group(0) @binding(5) var<storage, read> pos: array<u32>;
struct P { M: u32, rowLen: u32, S: u32 }
@group(0) @binding(6) var<uniform> p: P;
@compute @workgroup_size(${KV_STORE_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * nwg.x) * ${KV_STORE_WG}u + lid;
  if (t >= p.M * p.rowLen) { return; }
  let m = t / p.rowLen;
  let e = t % p.rowLen;
  let at = pos[m];
  if (at >= p.S) { return; } // out of the cache: dropped rather than written elsewhere
  let dst = (seq[m] * p.S + at) * p.rowLen + e;
  kc[dst] = k[t];
  vc[dst] = v[t];
}`;

/**
 * Records kc[seq[m], pos[m]] = k[m] and vc[seq[m], pos[m]] = v[m] for m < M, where k, v are
 * [M, nKv*hd] and the caches [B, S, nKv, hd]. Rows with pos[m] >= S are skipped.
 */
export function kvStore(
  rec: Recorder,
  k: GPUBuffer,
  v: GPUBuffer,
  kc: GPUBuffer,
  vc: GPUBuffer,
  seq: GPUBuffer,
  pos: GPUBuffer,
  M: number,
  nKv: number,
  hd: number,
  S: number,
): void {
  const kern = kernel(rec.gpu, "kvStore", KV_STORE_WGSL);
  const n = M * nKv * hd;
  rec.dispatch(
    kern,
    [k, v, kc, vc, seq, pos],
    [M, nKv * hd, S],
    grid(rec.gpu, Math.ceil(n / KV_STORE_WG)),
  );
}

/** Fixed-shape tree reductions over TILE lanes (reduceMax, reduceSum). */
const TREE_WGSL = treeReduceWgsl(TILE);

function attentionWgsl(hd: number): string {
  const nd = Math.ceil(hd / TILE);
  return /* wgsl */ `
${FORWARD_BINDINGS_WGSL}
const HD = ${hd}u;
const T = ${TILE}u;
var<workgroup> qs: array<f32, HD>;
var<workgroup> probs: array<f32, T>;
var<workgroup> rowInfo: vec2u;
${TREE_WGSL}
@compute @workgroup_size(${TILE})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let id = wid.x + wid.y * nwg.x;
  if (id >= p.M * p.nHeads) { return; }
  let m = id / p.nHeads;
  let h = id % p.nHeads;
  let g = h / (p.nHeads / p.nKv);
  if (lid == 0u) { rowInfo = vec2u(seq[m], pos[m]); }
  for (var d = lid; d < HD; d += T) { qs[d] = q[id * HD + d]; }
  let info = workgroupUniformLoad(&rowInfo);
  let last = info.y; // keys 0..last (inclusive) are visible
  let kvStride = p.nKv * HD;
  let base = info.x * p.S * kvStride + g * HD;
  var mRun: f32 = ${NEG_BIG};
  var lRun: f32 = 0.0;
  var acc: array<f32, ${nd}>;
  let nTiles = last / T + 1u;
  for (var t = 0u; t < nTiles; t++) {
    let j = t * T + lid;
    var s: f32 = ${NEG_BIG};
    if (j <= last) {
      let kb = base + j * kvStride;
      var dot: f32 = 0.0;
      for (var d = 0u; d < HD; d++) { dot = dot + qs[d] * kc[kb + d]; }
      s = dot * p.scale;
    }
    let mNew = max(mRun, reduceMax(lid, s));
    var e: f32 = 0.0;
    if (j <= last) { e = exp(s - mNew); }
    probs[lid] = e;
    let alpha = exp(mRun - mNew);
    lRun = lRun * alpha + reduceSum(lid, e); // reduceSum's barriers also publish probs
    mRun = mNew;
    let jEnd = min(T, last + 1u - t * T);
    for (var c = 0u; c < ${nd}u; c++) {
      let d = c * T + lid;
      if (d < HD) {
        var a: f32 = 0.0;
        for (var jj = 0u; jj < jEnd; jj++) {
          a = a + probs[jj] * vc[base + (t * T + jj) * kvStride + d];
        }
        acc[c] = acc[c] * alpha + a;
      }
    }
    workgroupBarrier(); // probs is rewritten by the next tile
  }
  for (var c = 0u; c < ${nd}u; c++) {
    let d = c * T + lid;
    if (d < HD) { out[id * HD + d] = acc[c] / lRun; }
  }
  if (lid == 0u) { lse[id] = mRun + log(lRun); }
}`;
}

/** Invocations per workgroup for the serial (one row per invocation) kernels. */
const SERIAL_WG = 64;

/**
 * Upper bounds on one serial invocation's loop iterations (see gpu/serial.ts), for keys or
 * query rows up to S and kv groups of `group` heads: per tile, the score loop with its inner
 * d loop, the softmax and tree passes, and the d loop with its inner key loop.
 */
export function serialLoops(
  kind: "forward" | "dkv" | "dq",
  S: number,
  hd: number,
  group: number,
): number {
  const tiles = Math.ceil(S / TILE) + 1;
  const scores = TILE * (hd + 2), apply = hd * (TILE + 2), tree = 2 * TILE + 16;
  const perTile = kind === "forward" ? scores + apply + tree : scores + apply;
  return (kind === "dkv" ? group : 1) * tiles * (perTile + 1) + 4 * (hd + 1);
}

/**
 * The forward with one invocation per (row, head), for CPU adapters: each invocation replays
 * what the workgroup kernel's TILE lanes do for its row, in the same order (see the module
 * notes), so the output and lse bits are the same.
 */
function attentionSerialWgsl(hd: number): string {
  return /* wgsl */ `
${FORWARD_BINDINGS_WGSL}
const HD = ${hd}u;
const T = ${TILE}u;
${serialTreeReduceWgsl(TILE)}
@compute @workgroup_size(${SERIAL_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let id = (wid.x + wid.y * nwg.x) * ${SERIAL_WG}u + lid;
  if (id >= p.M * p.nHeads) { return; }
  let m = id / p.nHeads;
  let h = id % p.nHeads;
  let g = h / (p.nHeads / p.nKv);
  let last = pos[m];
  let kvStride = p.nKv * HD;
  let base = seq[m] * p.S * kvStride + g * HD;
  var qs: array<f32, HD>;
  for (var d = 0u; d < HD; d++) { qs[d] = q[id * HD + d]; }
  var acc: array<f32, HD>;
  var probs: array<f32, T>;
  var red: array<f32, T>;
  var mRun: f32 = ${NEG_BIG};
  var lRun: f32 = 0.0;
  let nTiles = last / T + 1u;
  for (var t = 0u; t < nTiles; t++) {
    let jEnd = min(T, last + 1u - t * T);
    var mx: f32 = ${NEG_BIG};
    for (var l = 0u; l < jEnd; l++) {
      let kb = base + (t * T + l) * kvStride;
      var dot: f32 = 0.0;
      for (var d = 0u; d < HD; d++) { dot = dot + qs[d] * kc[kb + d]; }
      let s = dot * p.scale;
      probs[l] = s;
      mx = max(mx, s);
    }
    let mNew = max(mRun, mx);
    for (var l = 0u; l < T; l++) {
      var e: f32 = 0.0;
      if (l < jEnd) { e = exp(probs[l] - mNew); }
      probs[l] = e;
      red[l] = e;
    }
    let alpha = exp(mRun - mNew);
    lRun = lRun * alpha + serialTreeSum(&red);
    mRun = mNew;
    for (var d = 0u; d < HD; d++) {
      var a: f32 = 0.0;
      for (var jj = 0u; jj < jEnd; jj++) {
        a = a + probs[jj] * vc[base + (t * T + jj) * kvStride + d];
      }
      acc[d] = acc[d] * alpha + a;
    }
  }
  for (var d = 0u; d < HD; d++) { out[id * HD + d] = acc[d] / lRun; }
  lse[id] = mRun + log(lRun);
}`;
}

/** dk, dv with one invocation per (sequence, key position, kv head): the serial replay. */
function backwardKvSerialWgsl(hd: number): string {
  return /* wgsl */ `
${BACKWARD_KV_BINDINGS_WGSL}
const HD = ${hd}u;
const T = ${TILE}u;
@compute @workgroup_size(${SERIAL_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let id = (wid.x + wid.y * nwg.x) * ${SERIAL_WG}u + lid; // ((b * S) + j) * nKv + g
  if (id >= p.B * p.S * p.nKv) { return; }
  let g = id % p.nKv;
  let bj = id / p.nKv;
  let j = bj % p.S;
  let b = bj / p.S;
  var ks: array<f32, HD>;
  var vs: array<f32, HD>;
  for (var d = 0u; d < HD; d++) {
    ks[d] = kc[id * HD + d];
    vs[d] = vc[id * HD + d];
  }
  let group = p.nHeads / p.nKv;
  let count = p.S - j; // query rows i = j..S-1 see key j
  let nTiles = (count + T - 1u) / T;
  var accK: array<f32, HD>;
  var accV: array<f32, HD>;
  var probs: array<f32, T>;
  var dscores: array<f32, T>;
  for (var hi = 0u; hi < group; hi++) {
    let h = g * group + hi;
    for (var t = 0u; t < nTiles; t++) {
      let iEnd = min(T, count - t * T);
      for (var l = 0u; l < iEnd; l++) {
        let rh = (b * p.S + j + t * T + l) * p.nHeads + h;
        var s: f32 = 0.0;
        var dp: f32 = 0.0;
        for (var d = 0u; d < HD; d++) {
          s = s + q[rh * HD + d] * ks[d];
          dp = dp + dout[rh * HD + d] * vs[d];
        }
        let pr = exp(s * p.scale - lse[rh]);
        probs[l] = pr;
        dscores[l] = pr * (dp - delta[rh]);
      }
      for (var d = 0u; d < HD; d++) {
        var av: f32 = 0.0;
        var ak: f32 = 0.0;
        for (var ii = 0u; ii < iEnd; ii++) {
          let x = ((b * p.S + j + t * T + ii) * p.nHeads + h) * HD + d;
          av = av + probs[ii] * dout[x];
          ak = ak + dscores[ii] * q[x];
        }
        accV[d] = accV[d] + av;
        accK[d] = accK[d] + ak;
      }
    }
  }
  for (var d = 0u; d < HD; d++) {
    dk[id * HD + d] = accK[d] * p.scale;
    dv[id * HD + d] = accV[d];
  }
}`;
}

/** dq with one invocation per (row, head): the serial replay. */
function backwardQSerialWgsl(hd: number): string {
  return /* wgsl */ `
${BACKWARD_Q_BINDINGS_WGSL}
const HD = ${hd}u;
const T = ${TILE}u;
@compute @workgroup_size(${SERIAL_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let id = (wid.x + wid.y * nwg.x) * ${SERIAL_WG}u + lid; // m * nHeads + h
  if (id >= p.B * p.S * p.nHeads) { return; }
  let m = id / p.nHeads;
  let h = id % p.nHeads;
  let g = h / (p.nHeads / p.nKv);
  let last = m % p.S;
  let kvStride = p.nKv * HD;
  let base = (m / p.S) * p.S * kvStride + g * HD;
  var qs: array<f32, HD>;
  var dos: array<f32, HD>;
  for (var d = 0u; d < HD; d++) {
    qs[d] = q[id * HD + d];
    dos[d] = dout[id * HD + d];
  }
  var delta: f32 = 0.0;
  for (var d = 0u; d < HD; d++) { delta = delta + out[id * HD + d] * dos[d]; }
  let rowLse = lse[id];
  var acc: array<f32, HD>;
  var dscores: array<f32, T>;
  let nTiles = last / T + 1u;
  for (var t = 0u; t < nTiles; t++) {
    let jEnd = min(T, last + 1u - t * T);
    for (var l = 0u; l < jEnd; l++) {
      let kb = base + (t * T + l) * kvStride;
      var s: f32 = 0.0;
      var dp: f32 = 0.0;
      for (var d = 0u; d < HD; d++) {
        s = s + qs[d] * kc[kb + d];
        dp = dp + dos[d] * vc[kb + d];
      }
      dscores[l] = exp(s * p.scale - rowLse) * (dp - delta);
    }
    for (var d = 0u; d < HD; d++) {
      var a: f32 = 0.0;
      for (var jj = 0u; jj < jEnd; jj++) {
        a = a + dscores[jj] * kc[base + (t * T + jj) * kvStride + d];
      }
      acc[d] = acc[d] + a;
    }
  }
  for (var d = 0u; d < HD; d++) { dq[id * HD + d] = acc[d] * p.scale; }
}`;
}

/**
 * Which kernels `attention` and `attentionBackward` record: "auto" (the serial replays on CPU
 * adapters, else the blocked kernels), or "rowwise" (the per-(row, head) workgroup kernels, kept
 * as the reference the blocked ones are tested and benchmarked against, and the fallback when a
 * block does not fit the device's workgroup memory).
 */
export type AttentionVariant = "auto" | "rowwise";

/**
 * Whether the blocked kernels replace the per-(row, head) workgroup kernels: in the workgroup
 * (GPU) style only. On a CPU adapter the rows too long for the serial kernels keep the
 * per-(row, head) kernels, so the serial style runs what it ran before: on lavapipe the blocked
 * kernels measured 1.0-2.3x the per-(row, head) ones for prefill and backward but 0.4-0.7x for
 * decode rows with hd <= 64 (bench-attention-cpu), where lanes gather what a GPU broadcasts.
 */
function useBlocked(gpu: Gpu, variant: AttentionVariant): boolean {
  return variant === "auto" && gpu.info.kernels === "workgroup";
}

/**
 * Records causal GQA attention for M query rows: for row m and head h (kv head
 * g = h / (nHeads/nKv)), out[m,h,:] = softmax over j <= pos[m] of (q[m,h]·kc[seq[m],j,g] * scale)
 * applied to vc[seq[m],j,g,:]; lse[m,h] = log-sum-exp of the scaled scores (for the backward).
 * q, out are [M, nHeads*hd]; kc, vc [B, S, nKv*hd]; seq, pos u32 [M]; lse [M*nHeads].
 * Prefill and decode rows give identical bits (see the module notes).
 */
export function attention(
  rec: Recorder,
  q: GPUBuffer,
  kc: GPUBuffer,
  vc: GPUBuffer,
  seq: GPUBuffer,
  pos: GPUBuffer,
  out: GPUBuffer,
  lse: GPUBuffer,
  M: number,
  nHeads: number,
  nKv: number,
  hd: number,
  S: number,
  scale: number,
  variant: AttentionVariant = "auto",
): void {
  checkShapes("attention", nHeads, nKv, hd);
  const serial = variant === "auto" && useSerial(rec.gpu, serialLoops("forward", S, hd, 1));
  const plan = useBlocked(rec.gpu, variant) ? planBlocked(rec.gpu, M, nHeads / nKv, hd) : null;
  if (!serial && plan) {
    attentionBlocked(rec, plan, [q, kc, vc, seq, pos, out, lse], M, nHeads, nKv, hd, S, scale);
    return;
  }
  const k = serial
    ? kernel(rec.gpu, `attentionSerial_hd${hd}`, attentionSerialWgsl(hd))
    : kernel(rec.gpu, `attention_hd${hd}`, attentionWgsl(hd));
  rec.dispatch(
    k,
    [q, kc, vc, seq, pos, out, lse],
    [M, nHeads, nKv, S, f32(scale)],
    grid(rec.gpu, serial ? Math.ceil(M * nHeads / SERIAL_WG) : M * nHeads),
  );
}

/** D[m,h] = out[m,h,:]·dout[m,h,:] (d ascending), one thread per (m, h). */
function deltaWgsl(hd: number): string {
  return /* wgsl */ `
@group(0) @binding(0) var<storage, read> out: array<f32>;
@group(0) @binding(1) var<storage, read> dout: array<f32>;
@group(0) @binding(2) var<storage, read_write> delta: array<f32>;
struct P { n: u32 }
@group(0) @binding(3) var<uniform> p: P;
@compute @workgroup_size(${TILE})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let id = (wid.x + wid.y * nwg.x) * ${TILE}u + lid;
  if (id >= p.n) { return; }
  var s: f32 = 0.0;
  for (var d = 0u; d < ${hd}u; d++) { s = s + out[id * ${hd}u + d] * dout[id * ${hd}u + d]; }
  delta[id] = s;
}`;
}

/**
 * Records D[r] = out[r,:]·dout[r,:] (d ascending) for `rows` (row, head) pairs into the first
 * `rows` floats of `delta`: the backward's first step (attentionBackward stages it in dq).
 */
export function attentionDelta(
  rec: Recorder,
  out: GPUBuffer,
  dout: GPUBuffer,
  delta: GPUBuffer,
  rows: number,
  hd: number,
): void {
  rec.dispatch(
    kernel(rec.gpu, `attentionDelta_hd${hd}`, deltaWgsl(hd)),
    [out, dout, delta],
    [rows],
    grid(rec.gpu, Math.ceil(rows / TILE)),
  );
}

/** dk, dv for one (sequence, key position, kv head) per workgroup. */
function backwardKvWgsl(hd: number): string {
  const nd = Math.ceil(hd / TILE);
  return /* wgsl */ `
${BACKWARD_KV_BINDINGS_WGSL}
const HD = ${hd}u;
const T = ${TILE}u;
var<workgroup> ks: array<f32, HD>;
var<workgroup> vs: array<f32, HD>;
var<workgroup> probs: array<f32, T>;
var<workgroup> dscores: array<f32, T>;
@compute @workgroup_size(${TILE})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let id = wid.x + wid.y * nwg.x; // ((b * S) + j) * nKv + g
  if (id >= p.B * p.S * p.nKv) { return; }
  let g = id % p.nKv;
  let bj = id / p.nKv;
  let j = bj % p.S;
  let b = bj / p.S;
  for (var d = lid; d < HD; d += T) {
    ks[d] = kc[id * HD + d];
    vs[d] = vc[id * HD + d];
  }
  workgroupBarrier();
  let group = p.nHeads / p.nKv;
  let count = p.S - j; // query rows i = j..S-1 see key j
  let nTiles = (count + T - 1u) / T;
  var accK: array<f32, ${nd}>;
  var accV: array<f32, ${nd}>;
  for (var hi = 0u; hi < group; hi++) {
    let h = g * group + hi;
    for (var t = 0u; t < nTiles; t++) {
      let i = j + t * T + lid;
      var pr: f32 = 0.0;
      var ds: f32 = 0.0;
      if (i < p.S) {
        let rh = (b * p.S + i) * p.nHeads + h;
        var s: f32 = 0.0;
        var dp: f32 = 0.0;
        for (var d = 0u; d < HD; d++) {
          s = s + q[rh * HD + d] * ks[d];
          dp = dp + dout[rh * HD + d] * vs[d];
        }
        pr = exp(s * p.scale - lse[rh]);
        ds = pr * (dp - delta[rh]);
      }
      probs[lid] = pr;
      dscores[lid] = ds;
      workgroupBarrier();
      let iEnd = min(T, count - t * T);
      for (var c = 0u; c < ${nd}u; c++) {
        let d = c * T + lid;
        if (d < HD) {
          var av: f32 = 0.0;
          var ak: f32 = 0.0;
          for (var ii = 0u; ii < iEnd; ii++) {
            let x = ((b * p.S + j + t * T + ii) * p.nHeads + h) * HD + d;
            av = av + probs[ii] * dout[x];
            ak = ak + dscores[ii] * q[x];
          }
          accV[c] = accV[c] + av;
          accK[c] = accK[c] + ak;
        }
      }
      workgroupBarrier();
    }
  }
  for (var c = 0u; c < ${nd}u; c++) {
    let d = c * T + lid;
    if (d < HD) {
      dk[id * HD + d] = accK[c] * p.scale;
      dv[id * HD + d] = accV[c];
    }
  }
}`;
}

/** dq for one (row, head) per workgroup, keys in the forward's tile order. */
function backwardQWgsl(hd: number): string {
  const nd = Math.ceil(hd / TILE);
  return /* wgsl */ `
${BACKWARD_Q_BINDINGS_WGSL}
const HD = ${hd}u;
const T = ${TILE}u;
var<workgroup> qs: array<f32, HD>;
var<workgroup> dos: array<f32, HD>;
var<workgroup> dscores: array<f32, T>;
@compute @workgroup_size(${TILE})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let id = wid.x + wid.y * nwg.x; // m * nHeads + h
  if (id >= p.B * p.S * p.nHeads) { return; }
  let m = id / p.nHeads;
  let h = id % p.nHeads;
  let g = h / (p.nHeads / p.nKv);
  let last = m % p.S;
  let kvStride = p.nKv * HD;
  let base = (m / p.S) * p.S * kvStride + g * HD;
  for (var d = lid; d < HD; d += T) {
    qs[d] = q[id * HD + d];
    dos[d] = dout[id * HD + d];
  }
  workgroupBarrier();
  // Same d-ascending order as the delta kernel, so every thread gets the same bits.
  var delta: f32 = 0.0;
  for (var d = 0u; d < HD; d++) { delta = delta + out[id * HD + d] * dos[d]; }
  let rowLse = lse[id];
  var acc: array<f32, ${nd}>;
  let nTiles = last / T + 1u;
  for (var t = 0u; t < nTiles; t++) {
    let j = t * T + lid;
    var ds: f32 = 0.0;
    if (j <= last) {
      let kb = base + j * kvStride;
      var s: f32 = 0.0;
      var dp: f32 = 0.0;
      for (var d = 0u; d < HD; d++) {
        s = s + qs[d] * kc[kb + d];
        dp = dp + dos[d] * vc[kb + d];
      }
      ds = exp(s * p.scale - rowLse) * (dp - delta);
    }
    dscores[lid] = ds;
    workgroupBarrier();
    let jEnd = min(T, last + 1u - t * T);
    for (var c = 0u; c < ${nd}u; c++) {
      let d = c * T + lid;
      if (d < HD) {
        var a: f32 = 0.0;
        for (var jj = 0u; jj < jEnd; jj++) {
          a = a + dscores[jj] * kc[base + (t * T + jj) * kvStride + d];
        }
        acc[c] = acc[c] + a;
      }
    }
    workgroupBarrier();
  }
  for (var c = 0u; c < ${nd}u; c++) {
    let d = c * T + lid;
    if (d < HD) { dq[id * HD + d] = acc[c] * p.scale; }
  }
}`;
}

/**
 * Records the attention backward in the training layout: M = B*S rows, row m is position
 * m % S of sequence m / S, fully causal within its sequence (kc, vc are that batch's keys and
 * values, [B, S, nKv*hd]). Writes (overwrites) dq [M, nHeads*hd], dk, dv [B, S, nKv*hd].
 *
 * With P = softmax(scale·q·k), D_i = out_i·dout_i and dS = P ⊙ (dout·vᵀ − D):
 * dq_i = scale·Σ_j dS_ij k_j (j ascending), dk_j = scale·Σ_h Σ_i dS_ij q_i, dv_j = Σ_h Σ_i P_ij
 * dout_i (h ascending, then i ascending). D is staged in the first M*nHeads floats of `dq`
 * before dq itself is written, so no scratch buffer is needed.
 */
export function attentionBackward(
  rec: Recorder,
  q: GPUBuffer,
  kc: GPUBuffer,
  vc: GPUBuffer,
  out: GPUBuffer,
  lse: GPUBuffer,
  dout: GPUBuffer,
  dq: GPUBuffer,
  dk: GPUBuffer,
  dv: GPUBuffer,
  B: number,
  S: number,
  nHeads: number,
  nKv: number,
  hd: number,
  scale: number,
  variant: AttentionVariant = "auto",
): void {
  checkShapes("attentionBackward", nHeads, nKv, hd);
  const gpu = rec.gpu;
  const rows = B * S * nHeads;
  const params = [B, S, nHeads, nKv, f32(scale)];
  attentionDelta(rec, out, dout, dq, rows, hd);
  const auto = variant === "auto";
  const serialKv = auto && useSerial(gpu, serialLoops("dkv", S, hd, nHeads / nKv));
  const serialQ = auto && useSerial(gpu, serialLoops("dq", S, hd, 1));
  const plan = useBlocked(gpu, variant) ? planBackwardBlocked(gpu, nHeads / nKv, hd) : null;
  if (plan) {
    const bufs = { q, kc, vc, out, lse, dout, dq, dk, dv };
    attentionBackwardBlocked(rec, plan, bufs, B, S, nHeads, nKv, hd, scale);
    return;
  }
  rec.dispatch(
    serialKv
      ? kernel(gpu, `attentionBackwardKvSerial_hd${hd}`, backwardKvSerialWgsl(hd))
      : kernel(gpu, `attentionBackwardKv_hd${hd}`, backwardKvWgsl(hd)),
    [q, kc, vc, lse, dout, dq, dk, dv],
    params,
    grid(gpu, serialKv ? Math.ceil(B * S * nKv / SERIAL_WG) : B * S * nKv),
  );
  rec.dispatch(
    serialQ
      ? kernel(gpu, `attentionBackwardQSerial_hd${hd}`, backwardQSerialWgsl(hd))
      : kernel(gpu, `attentionBackwardQ_hd${hd}`, backwardQWgsl(hd)),
    [q, kc, vc, out, lse, dout, dq],
    params,
    grid(gpu, serialQ ? Math.ceil(rows / SERIAL_WG) : rows),
  );
}
