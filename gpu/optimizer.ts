/**
 * Optimizer kernels: global gradient norm (deterministic two-level sum of squares per tensor,
 * then a fixed-order sum over tensors), the clip scale, and AdamW with decoupled weight decay.
 *
 * Usage per step: for each gradient tensor i, `sumSquares(rec, grad_i, n_i, partials, i)`;
 * then `clipScale(rec, partials, count, maxNorm, scaleBuf)`; then `adamw(...)` per tensor,
 * which multiplies each gradient by scaleBuf[1]. All on the GPU, no readback needed.
 *
 * @module
 */
import { createBuffer } from "./buffers.ts";
import { cdiv, f32, grid, kernel, type Recorder } from "./recorder.ts";
import { treeReduceWgsl } from "./reduce.ts";

const WG = 256;
/** Most first-level workgroups of {@link sumSquares}; also its scratch size. */
const MAX_PARTIAL_GROUPS = 1024;

const REDUCE_SUM_WGSL = treeReduceWgsl(WG);

const SUM_SQUARES_PARTIAL_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> scratch: array<f32>;
struct P { n: u32, groups: u32 }
@group(0) @binding(2) var<uniform> p: P;
${REDUCE_SUM_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  var s = 0.0;
  for (var i = wid.x * ${WG}u + t; i < p.n; i += p.groups * ${WG}u) { let v = x[i]; s += v * v; }
  s = reduceSum(t, s);
  if (t == 0u) { scratch[wid.x] = s; }
}`;

const SUM_SQUARES_FINAL_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> scratch: array<f32>;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;
struct P { groups: u32, slot: u32 }
@group(0) @binding(2) var<uniform> p: P;
${REDUCE_SUM_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) t: u32) {
  var s = 0.0;
  for (var i = t; i < p.groups; i += ${WG}u) { s += scratch[i]; }
  s = reduceSum(t, s);
  if (t == 0u) { partials[p.slot] = s; }
}`;

// Dispatches within a submission run in order, so one scratch per device serves every call.
const scratchCache = new WeakMap<GPUDevice, GPUBuffer>();

/**
 * partials[slot] = Σ x[i]² over n elements, by a fixed two-level reduction (the grouping depends
 * only on n). Records only.
 */
export function sumSquares(
  rec: Recorder,
  x: GPUBuffer,
  n: number,
  partials: GPUBuffer,
  slot: number,
): void {
  if (!Number.isInteger(slot) || slot < 0 || (slot + 1) * 4 > partials.size) {
    throw new Error(`sumSquares: slot ${slot} is outside partials (${partials.size / 4} slots)`);
  }
  let scratch = scratchCache.get(rec.gpu.device);
  if (!scratch) {
    scratch = createBuffer(rec.gpu, MAX_PARTIAL_GROUPS * 4, "sumSquares scratch");
    scratchCache.set(rec.gpu.device, scratch);
  }
  const groups = Math.max(1, Math.min(MAX_PARTIAL_GROUPS, cdiv(n, WG)));
  const k1 = kernel(rec.gpu, "sumSquaresPartial", SUM_SQUARES_PARTIAL_WGSL);
  rec.dispatch(k1, [x, scratch], [n, groups], groups);
  const k2 = kernel(rec.gpu, "sumSquaresFinal", SUM_SQUARES_FINAL_WGSL);
  rec.dispatch(k2, [scratch, partials], [groups, slot], 1);
}

const CLIP_SCALE_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> partials: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
struct P { nSlots: u32, maxNorm: f32 }
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(1)
fn main() {
  var s = 0.0;
  for (var i = 0u; i < p.nSlots; i++) { s += partials[i]; }
  let norm = sqrt(s);
  out[0] = norm;
  var scale = 1.0;
  if (p.maxNorm > 0.0) { scale = min(1.0, p.maxNorm / (norm + 1e-6)); }
  out[1] = scale;
}`;

/**
 * out[0] = global norm sqrt(Σ partials[0..nSlots)) summed in slot order; out[1] = clip scale
 * min(1, maxNorm / (norm + 1e-6)), or 1 when maxNorm <= 0 (no clipping). Records only.
 */
export function clipScale(
  rec: Recorder,
  partials: GPUBuffer,
  nSlots: number,
  maxNorm: number,
  out: GPUBuffer,
): void {
  if (nSlots * 4 > partials.size) {
    throw new Error(`clipScale: nSlots ${nSlots} exceeds partials (${partials.size / 4} slots)`);
  }
  const k = kernel(rec.gpu, "clipScale", CLIP_SCALE_WGSL);
  rec.dispatch(k, [partials, out], [nSlots, f32(maxNorm)], 1);
}

/** AdamW hyper-parameters for one update; `step` counts from 1. */
export interface AdamWOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step number, for bias correction. */
  step: number;
}

const ADAMW_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read> scale: array<f32>;
struct P { n: u32, beta1: f32, beta2: f32, eps: f32, decay: f32, stepSize: f32, sqrtBc2: f32 }
@group(0) @binding(5) var<uniform> p: P;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) t: u32) {
  let i = (wid.x + wid.y * nwg.x) * ${WG}u + t;
  if (i >= p.n) { return; }
  let g = grad[i] * scale[1];
  let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
  let vi = p.beta2 * v[i] + (1.0 - p.beta2) * (g * g);
  m[i] = mi;
  v[i] = vi;
  // As torch.optim.AdamW: decay first, then the bias-corrected step.
  let decayed = param[i] * (1.0 - p.decay);
  param[i] = decayed - p.stepSize * (mi / (sqrt(vi) / p.sqrtBc2 + p.eps));
}`;

/**
 * One AdamW update of n f32 parameters in place, as torch.optim.AdamW: g = grad * scaleBuf[1];
 * m = β1 m + (1-β1) g; v = β2 v + (1-β2) g²; param *= 1 - lr·wd (decoupled decay);
 * param -= lr/(1-β1^step) · m / (sqrt(v)/sqrt(1-β2^step) + eps). Records only.
 */
export function adamw(
  rec: Recorder,
  param: GPUBuffer,
  grad: GPUBuffer,
  m: GPUBuffer,
  v: GPUBuffer,
  n: number,
  opts: AdamWOptions,
  scaleBuf: GPUBuffer,
): void {
  const { lr, beta1, beta2, eps, weightDecay, step } = opts;
  if (!Number.isInteger(step) || step < 1) {
    throw new Error(`adamw: step must be an integer >= 1, got ${step}`);
  }
  for (const [name, x] of [["beta1", beta1], ["beta2", beta2]] as const) {
    if (!(x >= 0 && x < 1)) throw new Error(`adamw: ${name} must be in [0, 1), got ${x}`);
  }
  const bc1 = 1 - beta1 ** step, bc2 = 1 - beta2 ** step;
  const k = kernel(rec.gpu, "adamw", ADAMW_WGSL);
  rec.dispatch(k, [param, grad, m, v, scaleBuf], [
    n,
    f32(beta1),
    f32(beta2),
    f32(eps),
    f32(lr * weightDecay),
    f32(lr / bc1),
    f32(Math.sqrt(bc2)),
  ], grid(rec.gpu, cdiv(n, WG)));
}
