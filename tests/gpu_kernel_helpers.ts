/** Helpers shared by the kernel tests: upload, run one recorder, read back, finite differences. */
import assert from "node:assert/strict";
import type { Gpu, KernelStyle } from "../gpu/device.ts";
import { createBuffer, uploadBuffer } from "../gpu/buffers.ts";
import { Recorder } from "../gpu/recorder.ts";
import { packBf16Gpu, packedBf16Bytes } from "../gpu/bf16.ts";

/** Uploads a copy of `data` (so later host edits do not race the queue). */
export function up(gpu: Gpu, data: Float32Array | Uint32Array, label = "t"): GPUBuffer {
  return uploadBuffer(gpu, data.slice(), label);
}

/** Packs f32 values to BF16 on the GPU (rounding to nearest even), for the BF16 kernels. */
export async function bf16Of(gpu: Gpu, w: Float32Array): Promise<GPUBuffer> {
  const packed = createBuffer(gpu, packedBf16Bytes(w.length), "wBf16");
  const rec = new Recorder(gpu);
  packBf16Gpu(rec, up(gpu, w), packed, w.length);
  await rec.submit();
  return packed;
}

/** A zeroed f32 buffer of n elements. */
export function zeros(gpu: Gpu, n: number, label = "out"): GPUBuffer {
  return createBuffer(gpu, n * 4, label);
}

/** Records with `body`, submits once and reads back the named buffers as f32. */
export async function run(
  gpu: Gpu,
  body: (rec: Recorder) => void,
  reads: [GPUBuffer, number][],
): Promise<Float32Array[]> {
  const rec = new Recorder(gpu);
  body(rec);
  const pending = reads.map(([b, n]) => rec.read(b, 0, n * 4));
  await rec.submit();
  return (await Promise.all(pending)).map((ab) => new Float32Array(ab));
}

/** Seeded uniform integers in [0, hi) (mulberry32). */
export function randInts(n: number, hi: number, seed: number): Uint32Array {
  let s = seed >>> 0 || 1;
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * hi);
  }
  return out;
}

/** Σ a[i]·b[i] in f64. */
export function dot64(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/**
 * Central finite difference of `loss` with respect to `x[i]` for each probed index, where
 * `loss` evaluates the GPU forward on a perturbed copy of `x`.
 */
export async function finiteDiff(
  x: Float32Array,
  indices: number[],
  h: number,
  loss: (x: Float32Array) => Promise<number>,
): Promise<number[]> {
  const out: number[] = [];
  for (const i of indices) {
    const xp = x.slice(), xm = x.slice();
    xp[i] += h;
    xm[i] -= h;
    // Use the actual f32 step, not h, since x[i] ± h rounds.
    const step = xp[i] - xm[i];
    out.push((await loss(xp) - await loss(xm)) / step);
  }
  return out;
}

/**
 * Runs `body` under each kernel style (restoring the device's own afterwards) and returns the
 * outputs per style. `body` makes its own buffers, so the styles never share an output.
 */
export async function inBothStyles(
  gpu: Gpu,
  body: (gpu: Gpu) => Promise<Float32Array[]>,
): Promise<Record<KernelStyle, Float32Array[]>> {
  const own = gpu.info.kernels;
  try {
    gpu.info.kernels = "workgroup";
    const workgroup = await body(gpu);
    gpu.info.kernels = "serial";
    const serial = await body(gpu);
    return { workgroup, serial };
  } finally {
    gpu.info.kernels = own;
  }
}

/**
 * Asserts two f32 arrays have the same bit patterns, naming the first differing index and the
 * two sides (`names`, by default the two kernel styles).
 */
export function assertSameBits(
  a: Float32Array,
  b: Float32Array,
  what: string,
  names: [string, string] = ["workgroup", "serial"],
): void {
  assert.equal(a.length, b.length, `${what}: lengths`);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) {
    if (ua[i] !== ub[i]) {
      assert.fail(`${what}[${i}]: ${names[0]} ${a[i]} vs ${names[1]} ${b[i]} differ in bits`);
    }
  }
}
