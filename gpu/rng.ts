/**
 * Counter-based random numbers: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy
 * as 1, 2, 3", SC'11; the Random123 constants), in WGSL for kernels and in TypeScript as the
 * bit-exact reference.
 *
 * Sampling draws one number per (seed, stream, row, position): word 0 of
 * `philox4x32([row, position, stream, 0], [seed mod 2^32, floor(seed / 2^32)])`, turned into a
 * uniform in [0, 1) from its top 24 bits (exact in f32). No state is carried between draws, so a
 * token's randomness depends only on its key, never on batch composition or order.
 *
 * @module
 */
import { grid, kernel, type Recorder } from "./recorder.ts";

/** WGSL: `philox4x32(ctr, key)` and `uniform01(x)`; paste into a shader that needs them. */
export const PHILOX_WGSL = /* wgsl */ `
// 32x32 -> 64-bit product as (hi, lo), from 16-bit halves (WGSL has no u64).
fn philoxMulHiLo(a: u32, b: u32) -> vec2u {
  let a0 = a & 0xffffu;
  let a1 = a >> 16u;
  let b0 = b & 0xffffu;
  let b1 = b >> 16u;
  let p00 = a0 * b0;
  let p01 = a0 * b1;
  let p10 = a1 * b0;
  let p11 = a1 * b1;
  let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
  let hi = p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
  return vec2u(hi, a * b);
}
fn philox4x32(counter: vec4u, key: vec2u) -> vec4u {
  var c = counter;
  var k = key;
  for (var r = 0u; r < 10u; r++) {
    if (r > 0u) { k = k + vec2u(0x9E3779B9u, 0xBB67AE85u); }
    let x0 = philoxMulHiLo(0xD2511F53u, c.x);
    let x1 = philoxMulHiLo(0xCD9E8D57u, c.z);
    c = vec4u(x1.x ^ c.y ^ k.x, x1.y, x0.x ^ c.w ^ k.y, x0.y);
  }
  return c;
}
// Uniform in [0, 1) from the top 24 bits (exactly representable in f32).
fn uniform01(x: u32) -> f32 {
  return f32(x >> 8u) * (1.0 / 16777216.0);
}`;

const M32 = 0xffffffffn;

function mulHiLo(a: number, b: number): [number, number] {
  const p = BigInt(a) * BigInt(b);
  return [Number(p >> 32n), Number(p & M32)];
}

/** TypeScript reference of Philox4x32-10: four u32 words for a 4-word counter and 2-word key. */
export function philox4x32(
  counter: readonly [number, number, number, number],
  key: readonly [number, number],
): Uint32Array {
  let [c0, c1, c2, c3] = counter.map((x) => x >>> 0);
  let [k0, k1] = key.map((x) => x >>> 0);
  for (let r = 0; r < 10; r++) {
    if (r > 0) {
      k0 = (k0 + 0x9E3779B9) >>> 0;
      k1 = (k1 + 0xBB67AE85) >>> 0;
    }
    const [hi0, lo0] = mulHiLo(0xD2511F53, c0);
    const [hi1, lo1] = mulHiLo(0xCD9E8D57, c2);
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
  }
  return new Uint32Array([c0, c1, c2, c3]);
}

/** Splits a seed (an integer in 0..2^53-1) into the Philox key [low word, high word]. */
export function seedKey(seed: number): [number, number] {
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new Error(`sampling seed must be an integer in 0..2^53-1, got ${seed}`);
  }
  return [seed % 2 ** 32, Math.floor(seed / 2 ** 32)];
}

/** The uniform in [0, 1) that sampling uses for (seed, stream, row, position). */
export function samplingUniform(
  seed: number,
  stream: number,
  row: number,
  position: number,
): number {
  const x = philox4x32([row, position, stream, 0], seedKey(seed))[0];
  return (x >>> 8) / 16777216;
}

const WG = 64;
const FILL_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> counters: array<vec4u>;
@group(0) @binding(1) var<storage, read_write> out: array<vec4u>;
struct P { n: u32, k0: u32, k1: u32 }
@group(0) @binding(2) var<uniform> p: P;
${PHILOX_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * ${WG}u + lid;
  if (i < p.n) { out[i] = philox4x32(counters[i], vec2u(p.k0, p.k1)); }
}`;

/**
 * Records out[i] = philox4x32(counters[i], key) for i < n, where counters and out hold n
 * 4-word u32 vectors. Exposes the WGSL generator so it can be checked against the reference.
 */
export function philoxFill(
  rec: Recorder,
  counters: GPUBuffer,
  out: GPUBuffer,
  n: number,
  key: readonly [number, number],
): void {
  const k = kernel(rec.gpu, "philoxFill", FILL_WGSL);
  rec.dispatch(k, [counters, out], [n, key[0], key[1]], grid(rec.gpu, Math.ceil(n / WG)));
}
