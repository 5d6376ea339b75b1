/**
 * Element-wise kernels: residual add (forward; its backward is the identity, so the
 * gradient is simply accumulated with the same kernel) and scaled accumulation.
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import { f32, grid, kernel, type Recorder } from "./recorder.ts";

const WG = 256;

const ADD_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
struct P { n: u32 }
@group(0) @binding(3) var<uniform> p: P;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * ${WG}u + lid;
  if (i < p.n) { y[i] = a[i] + b[i]; }
}`;

/** y = a + b over `n` f32 elements (y may alias neither input). */
export function add(
  rec: Recorder,
  a: GPUBuffer,
  b: GPUBuffer,
  y: GPUBuffer,
  n: number,
): void {
  const k = kernel(rec.gpu, "add", ADD_WGSL);
  rec.dispatch(k, [a, b, y], [n], grid(rec.gpu, Math.ceil(n / WG)));
}

const AXPY_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
struct P { n: u32, alpha: f32 }
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * ${WG}u + lid;
  if (i < p.n) { y[i] = y[i] + p.alpha * x[i]; }
}`;

/** y += alpha * x over `n` f32 elements (gradient accumulation). */
export function axpy(rec: Recorder, x: GPUBuffer, y: GPUBuffer, n: number, alpha = 1): void {
  const k = kernel(rec.gpu, "axpy", AXPY_WGSL);
  rec.dispatch(k, [x, y], [n, f32(alpha)], grid(rec.gpu, Math.ceil(n / WG)));
}

/** Convenience for tests and callers that own a device but no recorder. */
export type { Gpu };
