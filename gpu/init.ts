/**
 * Parameter initialisation on the GPU: fill a buffer with N(mean, std^2) samples or a constant.
 *
 * The normal fill is counter-based (a value depends only on `seed` and its index), so it is
 * deterministic, needs no RNG state and is the same whatever the dispatch shape. Box-Muller over
 * two 24-bit uniforms derived from a bijective 32-bit integer hash (lowbias32) of the index.
 * {@link normalAt} is the TypeScript reference (equal up to the GPU's log/cos accuracy).
 *
 * @module
 */
import { f32, grid, kernel, type Recorder } from "./recorder.ts";
import { rowWindows } from "./window.ts";

const WG = 256;

/** WGSL of the integer hash, shared by the kernel below. */
const HASH_WGSL = /* wgsl */ `
fn mix32(v: u32) -> u32 {
  var x = v;
  x ^= x >> 16u; x *= 0x7feb352du;
  x ^= x >> 15u; x *= 0x846ca68bu;
  x ^= x >> 16u;
  return x;
}`;

const NORMAL_WGSL = /* wgsl */ `
${HASH_WGSL}
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
struct P { n: u32, seed: u32, sd: f32, mean: f32, base: u32 }
@group(0) @binding(1) var<uniform> p: P;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * ${WG}u + lid;
  if (i >= p.n) { return; }
  let a = mix32((p.base + i) ^ p.seed);
  let h1 = mix32(a + 0x9e3779b9u);
  let h2 = mix32(a + 0x3c6ef372u);
  let u1 = (f32(h1 >> 8u) + 1.0) * (1.0 / 16777216.0);
  let u2 = f32(h2 >> 8u) * (1.0 / 16777216.0);
  let z = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
  y[i] = p.mean + p.sd * z;
}`;

const CONST_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
struct P { n: u32, value: f32 }
@group(0) @binding(1) var<uniform> p: P;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * ${WG}u + lid;
  if (i < p.n) { y[i] = p.value; }
}`;

/**
 * Fills `buf[0..n)` with N(mean, std^2) samples keyed by (`seed`, index); a buffer past one
 * binding is filled window by window (the same values: each keeps its global index).
 */
export function fillNormal(
  rec: Recorder,
  buf: GPUBuffer,
  n: number,
  seed: number,
  std: number,
  mean = 0,
): void {
  const k = kernel(rec.gpu, "fill_normal", NORMAL_WGSL);
  for (const w of rowWindows(rec.gpu, buf, n, 4)) {
    const params = [w.rows, seed >>> 0, f32(std), f32(mean), w.row0];
    rec.dispatch(k, [w.binding], params, grid(rec.gpu, Math.ceil(w.rows / WG)));
  }
}

/** Fills `buf[0..n)` with `value` (window by window past one binding). */
export function fillConst(rec: Recorder, buf: GPUBuffer, n: number, value: number): void {
  const k = kernel(rec.gpu, "fill_const", CONST_WGSL);
  for (const w of rowWindows(rec.gpu, buf, n, 4)) {
    rec.dispatch(k, [w.binding], [w.rows, f32(value)], grid(rec.gpu, Math.ceil(w.rows / WG)));
  }
}

/** lowbias32: a bijective 32-bit integer hash (same as the WGSL `mix32`). */
export function mix32(v: number): number {
  let x = v >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d) >>> 0;
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/** Hashes a string to 32 bits (FNV-1a over UTF-16 code units, then mixed). */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return mix32(h);
}

/** TypeScript reference of the standard normal sample {@link fillNormal} draws at index `i`. */
export function normalAt(seed: number, i: number): number {
  const a = mix32((i ^ seed) >>> 0);
  const h1 = mix32((a + 0x9e3779b9) >>> 0);
  const h2 = mix32((a + 0x3c6ef372) >>> 0);
  const u1 = ((h1 >>> 8) + 1) / 16777216;
  const u2 = (h2 >>> 8) / 16777216;
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}
