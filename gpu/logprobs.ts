/**
 * The log-softmax end of the model: per-token log-probabilities of chosen targets, their
 * gradient with respect to the logits, and per-row entropy for metrics. The LM head itself is a
 * matmul (gpu/matmul.ts).
 *
 * One workgroup owns one row. Each of its 256 threads walks the row with stride 256 in ascending
 * order, then a fixed-shape tree combines the 256 partials, so a row's result never depends on
 * the other rows (generation and training see the same bits). In the "serial" kernel style (CPU
 * adapters, gpu/device.ts) one invocation owns one row and replays the same lane partials and
 * tree without barriers, giving the same bits; the backward is elementwise and has one style.
 *
 * @module
 */
import { cdiv, grid, kernel, type Recorder } from "./recorder.ts";
import { serialTreeReduceWgsl, treeReduceWgsl } from "./reduce.ts";
import { useSerial } from "./serial.ts";

const WG = 256;

const REDUCE_WGSL = treeReduceWgsl(WG);

/** Computes the row's max-shifted logsumexp into `rowLse`; `t` and `base` must be in scope. */
const ROW_LSE_WGSL = /* wgsl */ `
  var mx = -3.4028235e38;
  for (var v = t; v < p.V; v += ${WG}u) { mx = max(mx, logits[base + v]); }
  mx = reduceMax(t, mx);
  var s = 0.0;
  for (var v = t; v < p.V; v += ${WG}u) { s += exp(logits[base + v] - mx); }
  s = reduceSum(t, s);
  let rowLse = mx + log(s);`;

const TOKEN_LOGPROBS_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<u32>;
@group(0) @binding(2) var<storage, read_write> logp: array<f32>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;
struct P { M: u32, V: u32 }
@group(0) @binding(4) var<uniform> p: P;
${REDUCE_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) t: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.M) { return; }
  let base = row * p.V;
  ${ROW_LSE_WGSL}
  if (t == 0u) {
    lse[row] = rowLse;
    let tgt = targets[row];
    // An out-of-range target yields NaN rather than reading a neighbouring row.
    if (tgt < p.V) { logp[row] = logits[base + tgt] - rowLse; } else { logp[row] = bitcast<f32>(0x7fc00000u); }
  }
}`;

const SERIAL_WG = 64; // rows per workgroup in the serial style (one invocation per row)

/**
 * The "serial" style (gpu/device.ts `KernelStyle`): one invocation per row, no barriers. The
 * trees replay the workgroup kernels' reductions over WG lane partials (lane t's strided values
 * in `red[t]`) in the same pairing order, so the bits are the same.
 */
const SERIAL_TREES_WGSL = serialTreeReduceWgsl(WG) + /* wgsl */ `
fn serialRowLse(base: u32) -> f32 {
  var red: array<f32, ${WG}>;
  for (var t = 0u; t < ${WG}u; t++) {
    var mx = -3.4028235e38;
    for (var v = t; v < p.V; v += ${WG}u) { mx = max(mx, logits[base + v]); }
    red[t] = mx;
  }
  let mx = serialTreeMax(&red);
  for (var t = 0u; t < ${WG}u; t++) {
    var s = 0.0;
    for (var v = t; v < p.V; v += ${WG}u) { s += exp(logits[base + v] - mx); }
    red[t] = s;
  }
  let s = serialTreeSum(&red);
  return mx + log(s);
}`;

const SERIAL_TOKEN_LOGPROBS_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<u32>;
@group(0) @binding(2) var<storage, read_write> logp: array<f32>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;
struct P { M: u32, V: u32 }
@group(0) @binding(4) var<uniform> p: P;
${SERIAL_TREES_WGSL}
@compute @workgroup_size(${SERIAL_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let row = (wid.x + wid.y * nwg.x) * ${SERIAL_WG}u + lane;
  if (row >= p.M) { return; }
  let base = row * p.V;
  let rowLse = serialRowLse(base);
  lse[row] = rowLse;
  let tgt = targets[row];
  if (tgt < p.V) { logp[row] = logits[base + tgt] - rowLse; } else { logp[row] = bitcast<f32>(0x7fc00000u); }
}`;

/**
 * lse[m] = logsumexp(logits[m,:]) and logp[m] = logits[m, targets[m]] - lse[m] for M rows of
 * V logits. A target >= V gives NaN. Records only.
 */
export function tokenLogprobs(
  rec: Recorder,
  logits: GPUBuffer,
  targets: GPUBuffer,
  logp: GPUBuffer,
  lse: GPUBuffer,
  M: number,
  V: number,
): void {
  // Serial loops: two lane passes of V + 513 and two trees of 272.
  if (useSerial(rec.gpu, 2 * V + 2048)) {
    const k = kernel(rec.gpu, "tokenLogprobsSerial", SERIAL_TOKEN_LOGPROBS_WGSL);
    rec.dispatch(k, [logits, targets, logp, lse], [M, V], grid(rec.gpu, cdiv(M, SERIAL_WG)));
    return;
  }
  const k = kernel(rec.gpu, "tokenLogprobs", TOKEN_LOGPROBS_WGSL);
  rec.dispatch(k, [logits, targets, logp, lse], [M, V], grid(rec.gpu, M));
}

const TOKEN_LOGPROBS_BACKWARD_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> lse: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read> dlogp: array<f32>;
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;
struct P { M: u32, V: u32 }
@group(0) @binding(5) var<uniform> p: P;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) t: u32) {
  let i = (wid.x + wid.y * nwg.x) * ${WG}u + t;
  if (i >= p.M * p.V) { return; }
  let row = i / p.V;
  let v = i - row * p.V;
  let prob = exp(logits[i] - lse[row]);
  let onehot = select(0.0, 1.0, targets[row] == v);
  dlogits[i] = dlogp[row] * (onehot - prob);
}`;

/**
 * dlogits[m,v] = dlogp[m] * (onehot(targets[m])[v] - softmax(logits[m])[v]), overwriting
 * dlogits. `lse` is the one {@link tokenLogprobs} saved. Needs M*V < 2^32. Records only.
 */
export function tokenLogprobsBackward(
  rec: Recorder,
  logits: GPUBuffer,
  lse: GPUBuffer,
  targets: GPUBuffer,
  dlogp: GPUBuffer,
  dlogits: GPUBuffer,
  M: number,
  V: number,
): void {
  if (M * V >= 2 ** 32) throw new Error(`tokenLogprobsBackward: M*V = ${M * V} needs u32 indexing`);
  const k = kernel(rec.gpu, "tokenLogprobsBackward", TOKEN_LOGPROBS_BACKWARD_WGSL);
  rec.dispatch(
    k,
    [logits, lse, targets, dlogp, dlogits],
    [M, V],
    grid(rec.gpu, Math.ceil((M * V) / WG)),
  );
}

const ENTROPY_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> lse: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
struct P { M: u32, V: u32 }
@group(0) @binding(3) var<uniform> p: P;
${REDUCE_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) t: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.M) { return; }
  let base = row * p.V;
  let l = lse[row];
  var s = 0.0;
  for (var v = t; v < p.V; v += ${WG}u) {
    let z = logits[base + v] - l; // log-probability
    let e = exp(z);
    // Masked (-inf) logits contribute 0, not 0 * -inf = NaN.
    if (e > 0.0) { s += e * z; }
  }
  s = reduceSum(t, s);
  if (t == 0u) { out[row] = -s; }
}`;

const SERIAL_ENTROPY_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> lse: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
struct P { M: u32, V: u32 }
@group(0) @binding(3) var<uniform> p: P;
${SERIAL_TREES_WGSL}
@compute @workgroup_size(${SERIAL_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let row = (wid.x + wid.y * nwg.x) * ${SERIAL_WG}u + lane;
  if (row >= p.M) { return; }
  let base = row * p.V;
  let l = lse[row];
  var red: array<f32, ${WG}>;
  for (var t = 0u; t < ${WG}u; t++) {
    var s = 0.0;
    for (var v = t; v < p.V; v += ${WG}u) {
      let z = logits[base + v] - l;
      let e = exp(z);
      if (e > 0.0) { s += e * z; }
    }
    red[t] = s;
  }
  out[row] = -serialTreeSum(&red);
}`;

/**
 * out[m] = entropy of softmax(logits[m,:]) in nats, = -Σ p log p, using the `lse` saved by
 * {@link tokenLogprobs}. Records only.
 */
export function entropy(
  rec: Recorder,
  logits: GPUBuffer,
  lse: GPUBuffer,
  out: GPUBuffer,
  M: number,
  V: number,
): void {
  // Serial loops: one lane pass of V + 513 and one tree of 272.
  if (useSerial(rec.gpu, V + 1024)) {
    const k = kernel(rec.gpu, "entropySerial", SERIAL_ENTROPY_WGSL);
    rec.dispatch(k, [logits, lse, out], [M, V], grid(rec.gpu, cdiv(M, SERIAL_WG)));
    return;
  }
  const k = kernel(rec.gpu, "entropy", ENTROPY_WGSL);
  rec.dispatch(k, [logits, lse, out], [M, V], grid(rec.gpu, M));
}
