/**
 * SwiGLU activation of the Llama MLP, forward and backward: y = silu(gate) * up with
 * silu(g) = g * sigmoid(g). Element-wise, so trivially row-invariant.
 *
 * @module
 */
import { grid, kernel, type Recorder } from "./recorder.ts";

const WG = 256;

// sigmoid as 1/(1+exp(-g)): exp overflows to +inf for very negative g and the quotient goes to
// 0, the right limit, so no branch is needed.
const SIGMOID_WGSL = /* wgsl */ `
fn sigmoid(g: f32) -> f32 { return 1.0 / (1.0 + exp(-g)); }`;

const FORWARD_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> gate: array<f32>;
@group(0) @binding(1) var<storage, read> up: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
struct P { n: u32 }
@group(0) @binding(3) var<uniform> p: P;
${SIGMOID_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) t: u32) {
  let i = (wid.x + wid.y * nwg.x) * ${WG}u + t;
  if (i >= p.n) { return; }
  let g = gate[i];
  y[i] = (g * sigmoid(g)) * up[i];
}`;

/** y = silu(gate) * up over `n` elements (y may not alias the inputs). Records only. */
export function swiglu(
  rec: Recorder,
  gate: GPUBuffer,
  up: GPUBuffer,
  y: GPUBuffer,
  n: number,
): void {
  const k = kernel(rec.gpu, "swiglu", FORWARD_WGSL);
  rec.dispatch(k, [gate, up, y], [n], grid(rec.gpu, Math.ceil(n / WG)));
}

const BACKWARD_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> gate: array<f32>;
@group(0) @binding(2) var<storage, read> up: array<f32>;
@group(0) @binding(3) var<storage, read_write> dgate: array<f32>;
@group(0) @binding(4) var<storage, read_write> dup: array<f32>;
struct P { n: u32 }
@group(0) @binding(5) var<uniform> p: P;
${SIGMOID_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) t: u32) {
  let i = (wid.x + wid.y * nwg.x) * ${WG}u + t;
  if (i >= p.n) { return; }
  let g = gate[i];
  let s = sigmoid(g);
  let d = dy[i];
  // silu'(g) = s * (1 + g * (1 - s))
  dgate[i] = d * up[i] * (s * (1.0 + g * (1.0 - s)));
  dup[i] = d * (g * s);
}`;

/**
 * SwiGLU backward over `n` elements: dgate = dy * up * silu'(gate), dup = dy * silu(gate)
 * (both overwrite). Records only.
 */
export function swigluBackward(
  rec: Recorder,
  dy: GPUBuffer,
  gate: GPUBuffer,
  up: GPUBuffer,
  dgate: GPUBuffer,
  dup: GPUBuffer,
  n: number,
): void {
  const k = kernel(rec.gpu, "swigluBackward", BACKWARD_WGSL);
  rec.dispatch(k, [dy, gate, up, dgate, dup], [n], grid(rec.gpu, Math.ceil(n / WG)));
}
