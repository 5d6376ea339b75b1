/**
 * Optimizer kernels: global gradient norm (deterministic two-level sum of squares per tensor,
 * then a fixed-order sum over tensors), the clip scale, and AdamW with decoupled weight decay.
 *
 * Two ways to record a step, with the same bits. Per tensor: `sumSquares(rec, grad_i, n_i,
 * partials, i)` for each tensor, `clipScale(...)`, then `adamw(...)` per tensor (3 dispatches a
 * tensor). Multi-tensor, as lib/train/optimizer.ts does: {@link sumSquaresMulti} (the same
 * per-tensor grouping, several tensors a dispatch, then one dispatch for every tensor's final
 * sum), `clipScale`, then {@link adamwMulti} (several tensors a dispatch). How many tensors share
 * a dispatch follows the device's maxStorageBuffersPerShaderStage, since every tensor is its own
 * buffer (the model's weights, the backward's gradients). AdamW reads the clip scale from
 * scaleBuf[1] on the GPU, so no readback is needed.
 *
 * @module
 */
import { createBuffer, STORAGE_USAGE, uploadBuffer } from "./buffers.ts";
import type { Gpu } from "./device.ts";
import { cdiv, f32, grid, kernel, type Param, type Recorder } from "./recorder.ts";
import { serialTreeReduceWgsl, treeReduceWgsl } from "./reduce.ts";
import { useSerial } from "./serial.ts";

const WG = 256;
/** Most first-level workgroups of {@link sumSquares}; also its scratch size. */
const MAX_PARTIAL_GROUPS = 1024;

/** First-level workgroups of a tensor of n values: fixed by n alone (the grouping is its bits). */
export const sumSquaresGroups = (n: number): number =>
  Math.max(1, Math.min(MAX_PARTIAL_GROUPS, cdiv(n, WG)));

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
  const groups = sumSquaresGroups(n);
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

/** Tensors per multi-tensor dispatch on this device (bindings per stage are the bound). */
export function tensorsPerDispatch(gpu: Gpu): { sumSquares: number; adamw: number } {
  const S = gpu.device.limits.maxStorageBuffersPerShaderStage;
  // sumSquares: one binding a tensor + the scratch (4 uniform words a tensor, 64 in a block);
  // AdamW: param, grad, m, v a tensor (the scale is a uniform; 2 + 4 words a tensor).
  return { sumSquares: Math.min(S - 1, 15), adamw: Math.max(1, Math.min(Math.floor(S / 4), 14)) };
}

/** Splits 0..count-1 into runs of at most `per` consecutive indices with the same `key`. */
function batches(count: number, per: number, key: (i: number) => unknown = () => 0): number[][] {
  const out: number[][] = [];
  let run: number[] = [];
  for (let i = 0; i < count; i++) {
    if (run.length === per || (run.length > 0 && key(i) !== key(run[0]))) {
      out.push(run);
      run = [];
    }
    run.push(i);
  }
  if (run.length > 0) out.push(run);
  return out;
}

/** `if (j == 0u) { body(0) } else if ...` over k tensors (WGSL cannot index bindings). */
const switchOver = (k: number, body: (j: number) => string): string =>
  Array.from({ length: k }, (_, j) => `if (j == ${j}u) {\n${body(j)}\n  }`).join(" else ");

/** Which of k tensors workgroup `w` serves: the last whose first workgroup is <= w. */
const tensorOfWorkgroup = (k: number): string =>
  Array.from({ length: k - 1 }, (_, j) => `  if (w >= p.t[${j + 1}].y) { j = ${j + 1}u; }`)
    .join("\n");

/**
 * The multi-tensor sum-of-squares bindings (both styles): k gradients, the scratch, and per
 * tensor n, its first workgroup (or group) in the dispatch, its groups, its scratch offset.
 */
function sumSquaresMultiBindings(k: number): string {
  const xs = Array.from(
    { length: k },
    (_, j) => `@group(0) @binding(${j}) var<storage, read> x${j}: array<f32>;`,
  ).join("\n");
  return /* wgsl */ `
${xs}
@group(0) @binding(${k}) var<storage, read_write> scratch: array<f32>;
struct P { t: array<vec4u, ${k}> }
@group(0) @binding(${k + 1}) var<uniform> p: P;`;
}

function sumSquaresMultiWgsl(k: number): string {
  return /* wgsl */ `
${sumSquaresMultiBindings(k)}
${REDUCE_SUM_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let w = wid.x;
  var j = 0u;
${tensorOfWorkgroup(k)}
  let e = p.t[j];
  let g = w - e.y;
  var s = 0.0;
  ${
    switchOver(
      k,
      (j) =>
        `    for (var i = g * ${WG}u + t; i < e.x; i += e.z * ${WG}u) { let v = x${j}[i]; s += v * v; }`,
    )
  }
  s = reduceSum(t, s);
  if (t == 0u) { scratch[e.w + g] = s; }
}`;
}

const SERIAL_WG = 64; // first-level groups per workgroup in the serial style
const SERIAL_TREE_WGSL = serialTreeReduceWgsl(WG);

/**
 * The serial style (CPU adapters, gpu/serial.ts) of {@link sumSquaresMultiWgsl}: one invocation
 * per first-level group replays its WG lanes' strided sums and their tree, without barriers.
 */
function sumSquaresMultiSerialWgsl(k: number): string {
  return /* wgsl */ `
${sumSquaresMultiBindings(k)}
${SERIAL_TREE_WGSL}
@compute @workgroup_size(${SERIAL_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let w = (wid.x + wid.y * nwg.x) * ${SERIAL_WG}u + lane;
  if (w >= p.t[${k - 1}].y + p.t[${k - 1}].z) { return; }
  var j = 0u;
${tensorOfWorkgroup(k)}
  let e = p.t[j];
  let g = w - e.y;
  var red: array<f32, ${WG}>;
  ${
    switchOver(
      k,
      (j) =>
        `    for (var t = 0u; t < ${WG}u; t++) {
      var s = 0.0;
      for (var i = g * ${WG}u + t; i < e.x; i += e.z * ${WG}u) { let v = x${j}[i]; s += v * v; }
      red[t] = s;
    }`,
    )
  }
  scratch[e.w + g] = serialTreeSum(&red);
}`;
}

/**
 * Loop iterations of one serial first-level group of a tensor of n values (every loop counted as
 * trips + 1): the lane loop, each lane's strided loop, the tree.
 */
function serialPartialLoops(n: number): number {
  const perLane = cdiv(n, sumSquaresGroups(n) * WG);
  return WG * (perLane + 2) + 1 + 2 * WG;
}

/** The serial style of {@link SUM_SQUARES_FINAL_MULTI_WGSL}: one invocation per tensor. */
const SUM_SQUARES_FINAL_MULTI_SERIAL_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> scratch: array<f32>;
@group(0) @binding(1) var<storage, read> table: array<vec2u>; // per tensor: offset, groups
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;
struct P { count: u32 }
@group(0) @binding(3) var<uniform> p: P;
${SERIAL_TREE_WGSL}
@compute @workgroup_size(${SERIAL_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let slot = (wid.x + wid.y * nwg.x) * ${SERIAL_WG}u + lane;
  if (slot >= p.count) { return; }
  let e = table[slot];
  var red: array<f32, ${WG}>;
  for (var t = 0u; t < ${WG}u; t++) {
    var s = 0.0;
    for (var i = t; i < e.y; i += ${WG}u) { s += scratch[e.x + i]; }
    red[t] = s;
  }
  partials[slot] = serialTreeSum(&red);
}`;

/** Loop iterations of one serial final sum: lanes over at most 1024 groups (5 trips), tree. */
const SERIAL_FINAL_LOOPS = WG * (MAX_PARTIAL_GROUPS / WG + 2) + 1 + 2 * WG;

const SUM_SQUARES_FINAL_MULTI_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> scratch: array<f32>;
@group(0) @binding(1) var<storage, read> table: array<vec2u>; // per tensor: offset, groups
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;
struct P { count: u32 }
@group(0) @binding(3) var<uniform> p: P;
${REDUCE_SUM_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) t: u32) {
  let slot = wid.x + wid.y * nwg.x;
  if (slot >= p.count) { return; }
  let e = table[slot];
  var s = 0.0;
  for (var i = t; i < e.y; i += ${WG}u) { s += scratch[e.x + i]; }
  s = reduceSum(t, s);
  if (t == 0u) { partials[slot] = s; }
}`;

/**
 * The fixed first-level layout of {@link sumSquaresMulti} for tensors of `numels` values: each
 * tensor's groups ({@link sumSquaresGroups}) at its offset in one scratch, and the table the
 * final dispatch reads. Built once per optimizer; {@link destroy} frees its two buffers.
 */
export class SumSquaresPlan {
  readonly numels: number[];
  readonly groups: number[];
  readonly offsets: number[];
  readonly scratch: GPUBuffer;
  readonly table: GPUBuffer;

  constructor(gpu: Gpu, numels: number[], label = "grad norm") {
    this.numels = [...numels];
    this.groups = numels.map(sumSquaresGroups);
    this.offsets = [];
    let total = 0;
    for (const g of this.groups) {
      this.offsets.push(total);
      total += g;
    }
    this.scratch = createBuffer(gpu, total * 4, `${label} scratch`);
    const table = new Uint32Array(2 * numels.length);
    this.groups.forEach((g, i) => table.set([this.offsets[i], g], 2 * i));
    this.table = uploadBuffer(gpu, table, `${label} table`);
  }

  /** Bytes of the scratch and the table for tensors of `numels` values (before allocation). */
  static bytes(numels: number[]): { scratch: number; table: number } {
    const groups = numels.reduce((a, n) => a + sumSquaresGroups(n), 0);
    return { scratch: groups * 4, table: numels.length * 8 };
  }

  destroy(): void {
    this.scratch.destroy();
    this.table.destroy();
  }
}

/**
 * partials[i] = Σ grads[i][j]², for every tensor i of `plan`, with each tensor's two-level
 * grouping exactly as {@link sumSquares} makes it (same bits): first levels several tensors a
 * dispatch, then one dispatch of one workgroup per tensor. Records only.
 */
export function sumSquaresMulti(
  rec: Recorder,
  plan: SumSquaresPlan,
  grads: GPUBuffer[],
  partials: GPUBuffer,
): void {
  const count = plan.numels.length;
  if (grads.length !== count) {
    throw new Error(`sumSquaresMulti: ${grads.length} gradients for a plan of ${count}`);
  }
  if (count * 4 > partials.size) {
    throw new Error(`sumSquaresMulti: ${count} tensors exceed partials (${partials.size / 4})`);
  }
  const per = tensorsPerDispatch(rec.gpu).sumSquares;
  // Consecutive tensors share a dispatch when they share a style: the serial one (one invocation
  // per group, CPU adapters) where a group's loops fit the loop budget.
  const serial = plan.numels.map((n) => useSerial(rec.gpu, serialPartialLoops(n)));
  for (const b of batches(count, per, (i) => serial[i])) {
    const style = serial[b[0]] ? "Serial" : "";
    const code = serial[b[0]] ? sumSquaresMultiSerialWgsl(b.length) : sumSquaresMultiWgsl(b.length);
    const k = kernel(rec.gpu, `sumSquaresPartialMulti${style}${b.length}`, code);
    const params: number[] = [];
    let first = 0;
    for (const i of b) {
      params.push(plan.numels[i], first, plan.groups[i], plan.offsets[i]);
      first += plan.groups[i];
    }
    const groups = serial[b[0]] ? grid(rec.gpu, cdiv(first, SERIAL_WG)) : first;
    rec.dispatch(k, [...b.map((i) => grads[i]), plan.scratch], params, groups);
  }
  const bindings = [plan.scratch, plan.table, partials];
  if (useSerial(rec.gpu, SERIAL_FINAL_LOOPS)) {
    const k2 = kernel(rec.gpu, "sumSquaresFinalMultiSerial", SUM_SQUARES_FINAL_MULTI_SERIAL_WGSL);
    rec.dispatch(k2, bindings, [count], grid(rec.gpu, cdiv(count, SERIAL_WG)));
  } else {
    const k2 = kernel(rec.gpu, "sumSquaresFinalMulti", SUM_SQUARES_FINAL_MULTI_WGSL);
    rec.dispatch(k2, bindings, [count], grid(rec.gpu, count));
  }
}

/**
 * The [norm, clip scale] buffer {@link clipScale} writes and {@link adamwMulti} reads as a
 * uniform (16 bytes: a vec4).
 */
export function createNormOut(gpu: Gpu, label = "grad norm and clip scale"): GPUBuffer {
  return gpu.device.createBuffer({
    size: 16,
    usage: STORAGE_USAGE | GPUBufferUsage.UNIFORM,
    label,
  });
}

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

/** One tensor of {@link adamwMulti}: its buffers, size and decoupled weight decay. */
export interface AdamWTensor {
  param: GPUBuffer;
  grad: GPUBuffer;
  m: GPUBuffer;
  v: GPUBuffer;
  n: number;
  weightDecay: number;
}

/** Values one {@link adamwMulti} workgroup updates: 16 per lane. */
const ADAMW_SPAN = 16 * WG;

function adamwMultiWgsl(k: number): string {
  const decl = Array.from({ length: k }, (_, j) =>
    [
      `@group(0) @binding(${4 * j}) var<storage, read_write> param${j}: array<f32>;`,
      `@group(0) @binding(${4 * j + 1}) var<storage, read> grad${j}: array<f32>;`,
      `@group(0) @binding(${4 * j + 2}) var<storage, read_write> m${j}: array<f32>;`,
      `@group(0) @binding(${4 * j + 3}) var<storage, read_write> v${j}: array<f32>;`,
    ].join("\n")).join("\n");
  // The per-tensor kernel's arithmetic, term for term (ADAMW_WGSL).
  const update = (j: number) =>
    `    for (var i = i0; i < end; i += ${WG}u) {
      let g = grad${j}[i] * sc.y;
      let mi = p.beta1 * m${j}[i] + (1.0 - p.beta1) * g;
      let vi = p.beta2 * v${j}[i] + (1.0 - p.beta2) * (g * g);
      m${j}[i] = mi;
      v${j}[i] = vi;
      let decayed = param${j}[i] * (1.0 - bitcast<f32>(e.z));
      param${j}[i] = decayed - p.stepSize * (mi / (sqrt(vi) / p.sqrtBc2 + p.eps));
    }`;
  return /* wgsl */ `
${decl}
@group(0) @binding(${4 * k}) var<uniform> sc: vec4f; // [norm, clip scale] (clipScale's out)
// Per tensor: n, its first workgroup in this dispatch, lr * weight decay (f32 bits).
struct P { beta1: f32, beta2: f32, eps: f32, stepSize: f32, sqrtBc2: f32, t: array<vec4u, ${k}> }
@group(0) @binding(${4 * k + 1}) var<uniform> p: P;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) t: u32) {
  let w = wid.x + wid.y * nwg.x;
  var j = 0u;
${tensorOfWorkgroup(k)}
  let e = p.t[j];
  // Each workgroup updates ${ADAMW_SPAN} consecutive values, lanes adjacent; the branch on the
  // tensor is then taken once per invocation (CPU adapters run untaken branches masked).
  let i0 = (w - e.y) * ${ADAMW_SPAN}u + t;
  let end = min(e.x, (w - e.y + 1u) * ${ADAMW_SPAN}u);
  ${switchOver(k, update)}
}`;
}

/**
 * One AdamW update of every tensor, several tensors a dispatch, with the bits of {@link adamw}
 * per tensor: g = grad * scaleBuf[1] ({@link createNormOut}'s buffer, read as a uniform) and so
 * on. `opts.weightDecay` is ignored: each tensor brings its own. Records only.
 */
export function adamwMulti(
  rec: Recorder,
  tensors: AdamWTensor[],
  opts: AdamWOptions,
  scaleBuf: GPUBuffer,
): void {
  const { lr, beta1, beta2, eps, step } = opts;
  if (!Number.isInteger(step) || step < 1) {
    throw new Error(`adamw: step must be an integer >= 1, got ${step}`);
  }
  for (const [name, x] of [["beta1", beta1], ["beta2", beta2]] as const) {
    if (!(x >= 0 && x < 1)) throw new Error(`adamw: ${name} must be in [0, 1), got ${x}`);
  }
  if (!(scaleBuf.usage & GPUBufferUsage.UNIFORM)) {
    throw new Error("adamwMulti: the scale buffer must be uniform-capable (createNormOut)");
  }
  const bc1 = 1 - beta1 ** step, bc2 = 1 - beta2 ** step;
  for (const b of batches(tensors.length, tensorsPerDispatch(rec.gpu).adamw)) {
    const k = kernel(rec.gpu, `adamwMulti${b.length}`, adamwMultiWgsl(b.length));
    // The struct's scalars take 5 words; its vec4u array starts at word 8.
    const params: Param[] = [f32(beta1), f32(beta2), f32(eps), f32(lr / bc1), f32(Math.sqrt(bc2))];
    params.push(0, 0, 0);
    const buffers: GPUBuffer[] = [];
    let first = 0;
    for (const i of b) {
      const t = tensors[i];
      buffers.push(t.param, t.grad, t.m, t.v);
      params.push(t.n, first, f32(lr * t.weightDecay), 0);
      first += cdiv(t.n, ADAMW_SPAN);
    }
    rec.dispatch(k, [...buffers, scaleBuf], params, grid(rec.gpu, first));
  }
}
