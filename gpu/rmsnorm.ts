/**
 * RMSNorm forward and backward (HF Llama: y = w * (x * rstd), rstd = 1/sqrt(mean(x²) + eps),
 * the weight multiplies the normalized value, no +1).
 *
 * The forward and the input gradient use one workgroup per row with a fixed tree reduction, so a
 * row's bits do not depend on the batch. The weight gradient sums rows in two stages (no
 * atomics): per chunk of {@link RMSNORM_DW_CHUNK_ROWS} rows in ascending order, then the chunks in
 * order; with one chunk that is the plain ascending sum over all rows. In the "serial" kernel
 * style (CPU adapters, gpu/device.ts) the forward and input gradient run one row per invocation
 * instead, replaying the same tree without barriers: the same bits, several times faster there.
 *
 * @module
 */
import { createBuffer } from "./buffers.ts";
import { cdiv, f32, grid, kernel, type Recorder } from "./recorder.ts";
import { serialTreeReduceWgsl, treeReduceWgsl } from "./reduce.ts";
import { SERIAL_LOOP_BUDGET, useSerial } from "./serial.ts";

const WG = 256;
const WG_DW = 64; // small groups: the weight gradient has only D threads, spread them wide

const REDUCE_SUM_WGSL = treeReduceWgsl(WG);

const FORWARD_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> rstd: array<f32>;
struct P { M: u32, D: u32, eps: f32 }
@group(0) @binding(4) var<uniform> p: P;
${REDUCE_SUM_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) t: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.M) { return; }
  let base = row * p.D;
  var ss = 0.0;
  for (var d = t; d < p.D; d += ${WG}u) { let v = x[base + d]; ss += v * v; }
  ss = reduceSum(t, ss);
  let r = 1.0 / sqrt(ss / f32(p.D) + p.eps);
  for (var d = t; d < p.D; d += ${WG}u) { y[base + d] = w[d] * (x[base + d] * r); }
  if (t == 0u) { rstd[row] = r; }
}`;

const SERIAL_WG = 64; // rows per workgroup in the serial style (one invocation per row)
/** `serialTreeSum(&red)`: the workgroup kernel's tree over WG lane partials, replayed. */
const SERIAL_TREES_WGSL = serialTreeReduceWgsl(WG);

/** Loop iterations of one serial row of D: lane loop D + 513, tree 272, output loop D + 1. */
const serialLoops = (D: number) => 2 * D + 1024;

const SERIAL_FORWARD_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> rstd: array<f32>;
struct P { M: u32, D: u32, eps: f32 }
@group(0) @binding(4) var<uniform> p: P;
${SERIAL_TREES_WGSL}
@compute @workgroup_size(${SERIAL_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let row = (wid.x + wid.y * nwg.x) * ${SERIAL_WG}u + lane;
  if (row >= p.M) { return; }
  let base = row * p.D;
  var red: array<f32, ${WG}>;
  for (var t = 0u; t < ${WG}u; t++) {
    var ss = 0.0;
    for (var d = t; d < p.D; d += ${WG}u) { let v = x[base + d]; ss += v * v; }
    red[t] = ss;
  }
  let ss = serialTreeSum(&red);
  let r = 1.0 / sqrt(ss / f32(p.D) + p.eps);
  for (var d = 0u; d < p.D; d++) { y[base + d] = w[d] * (x[base + d] * r); }
  rstd[row] = r;
}`;

/**
 * y[m,:] = w * (x[m,:] * rstd[m]) with rstd[m] = 1/sqrt(mean(x[m,:]²) + eps) saved for the
 * backward. x, y: [M, D]; w: [D]; rstd: [M]. `y` may not alias `x`. Records only.
 */
export function rmsnorm(
  rec: Recorder,
  x: GPUBuffer,
  w: GPUBuffer,
  y: GPUBuffer,
  rstd: GPUBuffer,
  M: number,
  D: number,
  eps: number,
): void {
  if (useSerial(rec.gpu, serialLoops(D))) {
    const k = kernel(rec.gpu, "rmsnormSerial", SERIAL_FORWARD_WGSL);
    rec.dispatch(k, [x, w, y, rstd], [M, D, f32(eps)], grid(rec.gpu, cdiv(M, SERIAL_WG)));
    return;
  }
  const k = kernel(rec.gpu, "rmsnorm", FORWARD_WGSL);
  rec.dispatch(k, [x, w, y, rstd], [M, D, f32(eps)], grid(rec.gpu, M));
}

const BACKWARD_DX_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> rstd: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
struct P { M: u32, D: u32, accumulate: u32 }
@group(0) @binding(5) var<uniform> p: P;
${REDUCE_SUM_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) t: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.M) { return; }
  let base = row * p.D;
  // dx = r * (g - x * r² * mean(g * x)), g = dy * w.
  var s = 0.0;
  for (var d = t; d < p.D; d += ${WG}u) { s += dy[base + d] * w[d] * x[base + d]; }
  s = reduceSum(t, s);
  let r = rstd[row];
  let c = r * r * (s / f32(p.D));
  for (var d = t; d < p.D; d += ${WG}u) {
    var v = r * (dy[base + d] * w[d] - x[base + d] * c);
    if (p.accumulate != 0u) { v = dx[base + d] + v; }
    dx[base + d] = v;
  }
}`;

const SERIAL_BACKWARD_DX_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> rstd: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
struct P { M: u32, D: u32, accumulate: u32 }
@group(0) @binding(5) var<uniform> p: P;
${SERIAL_TREES_WGSL}
@compute @workgroup_size(${SERIAL_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let row = (wid.x + wid.y * nwg.x) * ${SERIAL_WG}u + lane;
  if (row >= p.M) { return; }
  let base = row * p.D;
  var red: array<f32, ${WG}>;
  for (var t = 0u; t < ${WG}u; t++) {
    var s = 0.0;
    for (var d = t; d < p.D; d += ${WG}u) { s += dy[base + d] * w[d] * x[base + d]; }
    red[t] = s;
  }
  let s = serialTreeSum(&red);
  let r = rstd[row];
  let c = r * r * (s / f32(p.D));
  for (var d = 0u; d < p.D; d++) {
    var v = r * (dy[base + d] * w[d] - x[base + d] * c);
    if (p.accumulate != 0u) { v = dx[base + d] + v; }
    dx[base + d] = v;
  }
}`;

/**
 * Rows one weight-gradient thread sums (stage 1 of the two-stage dW, below). Every pass any
 * committed run or test made has M <= this (DESIGN.md: the tiny runs' largest is M = 2048), and
 * with M <= R there is one chunk whose partial is exactly the serial sum the single-stage kernel
 * made, so those results keep their bits. Under the CPU adapters' loop budget (gpu/serial.ts).
 */
export const RMSNORM_DW_CHUNK_ROWS = 4096;

/**
 * Stage 1: thread (c, d) sums rows [cR, min(cR + R, M)) of feature d in ascending order. With one
 * chunk it adds that sum straight into dw (no stage 2); otherwise it writes partials[c*D + d].
 */
const BACKWARD_DW_PARTIAL_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> rstd: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
struct P { M: u32, D: u32, chunkRows: u32, chunks: u32 }
@group(0) @binding(4) var<uniform> p: P;
@compute @workgroup_size(${WG_DW})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) t: u32) {
  let id = (wid.x + wid.y * nwg.x) * ${WG_DW}u + t;
  if (id >= p.D * p.chunks) { return; }
  let c = id / p.D;
  let d = id - c * p.D;
  let m0 = c * p.chunkRows;
  let m1 = min(m0 + p.chunkRows, p.M);
  var s = 0.0;
  for (var m = m0; m < m1; m++) { s += dy[m * p.D + d] * (x[m * p.D + d] * rstd[m]); }
  if (p.chunks == 1u) { out[d] = out[d] + s; } else { out[id] = s; }
}`;

/** Stage 2: dw[d] += partials[0][d] + partials[1][d] + ... in chunk order. */
const BACKWARD_DW_FINAL_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> partials: array<f32>;
@group(0) @binding(1) var<storage, read_write> dw: array<f32>;
struct P { D: u32, chunks: u32 }
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(${WG_DW})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) t: u32) {
  let d = (wid.x + wid.y * nwg.x) * ${WG_DW}u + t;
  if (d >= p.D) { return; }
  var s = partials[d];
  for (var c = 1u; c < p.chunks; c++) { s += partials[c * p.D + d]; }
  dw[d] = dw[d] + s;
}`;

/** Chunks of {@link RMSNORM_DW_CHUNK_ROWS} rows the weight gradient of M rows uses. */
export const rmsnormDwChunks = (M: number): number => Math.max(1, cdiv(M, RMSNORM_DW_CHUNK_ROWS));

/**
 * Bytes of the weight gradient's partial sums for M rows of D features (0 with one chunk): a
 * scratch buffer kept per device, grown to the largest call (lib/model/memory_plan.ts counts it).
 */
export const rmsnormDwScratchBytes = (M: number, D: number): number => {
  const chunks = rmsnormDwChunks(M);
  return chunks > 1 ? chunks * D * 4 : 0;
};

// Dispatches within a submission run in order, so one scratch per device serves every call.
const dwScratch = new WeakMap<GPUDevice, GPUBuffer>();

function dwScratchFor(rec: Recorder, bytes: number): GPUBuffer {
  let buf = dwScratch.get(rec.gpu.device);
  if (!buf || buf.size < bytes) {
    buf?.destroy(); // earlier submissions keep what they use alive until they finish
    buf = createBuffer(rec.gpu, bytes, "rmsnormBackward dW partials");
    dwScratch.set(rec.gpu.device, buf);
  }
  return buf;
}

/**
 * RMSNorm backward. dx[M,D] (+)= ∂L/∂x (overwrites unless `accumulateDx`); dw[D] += Σ_m
 * dy[m,:] * x[m,:] * rstd[m], summed in ascending rows per chunk of
 * {@link RMSNORM_DW_CHUNK_ROWS}, then over the chunks in order (always accumulates: the caller
 * zeroes). `rstd` is the one {@link rmsnorm} saved. Records only.
 */
export function rmsnormBackward(
  rec: Recorder,
  dy: GPUBuffer,
  x: GPUBuffer,
  w: GPUBuffer,
  rstd: GPUBuffer,
  dx: GPUBuffer,
  dw: GPUBuffer,
  M: number,
  D: number,
  accumulateDx = false,
): void {
  // Checked before recording anything, so a refused call leaves the recorder as it was.
  const chunks = rmsnormDwChunks(M);
  if (rec.gpu.info.isFallbackAdapter && chunks + 1 > SERIAL_LOOP_BUDGET) {
    // Stage 2 loops over the chunks: lavapipe would stop it early, silently.
    throw new Error(
      `rmsnormBackward: the weight gradient over M=${M} rows needs more loop iterations than a CPU adapter runs (${SERIAL_LOOP_BUDGET}); use fewer rows per pass`,
    );
  }
  const dxParams = [M, D, accumulateDx ? 1 : 0];
  if (useSerial(rec.gpu, serialLoops(D))) {
    const kdx = kernel(rec.gpu, "rmsnormBackwardDxSerial", SERIAL_BACKWARD_DX_WGSL);
    rec.dispatch(kdx, [dy, x, w, rstd, dx], dxParams, grid(rec.gpu, cdiv(M, SERIAL_WG)));
  } else {
    const kdx = kernel(rec.gpu, "rmsnormBackwardDx", BACKWARD_DX_WGSL);
    rec.dispatch(kdx, [dy, x, w, rstd, dx], dxParams, grid(rec.gpu, M));
  }
  const R = RMSNORM_DW_CHUNK_ROWS;
  const k1 = kernel(rec.gpu, "rmsnormBackwardDwPartial", BACKWARD_DW_PARTIAL_WGSL);
  const groups1 = grid(rec.gpu, cdiv(chunks * D, WG_DW));
  if (chunks === 1) {
    rec.dispatch(k1, [dy, x, rstd, dw], [M, D, R, 1], groups1);
    return;
  }
  const partials = dwScratchFor(rec, chunks * D * 4);
  rec.dispatch(k1, [dy, x, rstd, partials], [M, D, R, chunks], groups1);
  const k2 = kernel(rec.gpu, "rmsnormBackwardDwFinal", BACKWARD_DW_FINAL_WGSL);
  rec.dispatch(k2, [partials, dw], [D, chunks], grid(rec.gpu, cdiv(D, WG_DW)));
}
