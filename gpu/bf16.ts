/**
 * Packed BF16 storage: the layout shared by the kernels that read 16-bit frozen weights.
 *
 * A tensor of n BF16 values is stored row-major as ceil(n/2) u32 words, value 2i in the low
 * half of word i and value 2i+1 in the high half (little-endian, so the bytes are exactly those
 * of a BF16 safetensors tensor). BF16 is the high half of an f32, so widening is a 16-bit shift:
 * exact, and no `shader-f16` needed. {@link packBf16Gpu} goes the other way on the GPU (round
 * to nearest even, as `f32ToBf16` in lib/model/safetensors.ts), for weights made on the GPU.
 *
 * @module
 */
import { grid, kernel, type Recorder } from "./recorder.ts";
import { rowWindows } from "./window.ts";

const WG = 256;

/**
 * WGSL function `<name>(i: u32) -> f32` returning element i of the packed BF16 array bound as
 * `words` (a module-scope `array<u32>`), widened exactly to f32.
 */
export function widenBf16Wgsl(name: string, words: string): string {
  return /* wgsl */ `
fn ${name}(i: u32) -> f32 {
  let word = ${words}[i >> 1u];
  return bitcast<f32>(select(word << 16u, word & 0xffff0000u, (i & 1u) == 1u));
}`;
}

/** Bytes of `n` packed BF16 values (whole u32 words). */
export const packedBf16Bytes = (n: number): number => Math.ceil(n / 2) * 4;

/** Packs BF16 bit patterns into u32 words (an odd count leaves the last high half zero). */
export function packBf16(bits: Uint16Array): Uint32Array {
  const out = new Uint32Array(Math.ceil(bits.length / 2));
  for (let i = 0; i + 1 < bits.length; i += 2) out[i >> 1] = (bits[i] | (bits[i + 1] << 16)) >>> 0;
  if (bits.length % 2) out[out.length - 1] = bits[bits.length - 1];
  return out;
}

/** Widens the first `n` values of packed BF16 words to f32 (exact). */
export function unpackBf16(words: Uint32Array, n: number): Float32Array {
  if (n > words.length * 2) {
    throw new RangeError(
      `unpackBf16: ${n} values need ${Math.ceil(n / 2)} words, got ${words.length}`,
    );
  }
  const out = new Float32Array(n);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < n; i++) {
    const w = words[i >> 1];
    u[i] = i & 1 ? w & 0xffff0000 : (w << 16) >>> 0;
  }
  return out;
}

const PACK_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> words: array<u32>;
struct P { n: u32 }
@group(0) @binding(2) var<uniform> p: P;
// BF16 bits of x[i], rounded to nearest even; a NaN stays a quiet NaN. 0 past the end.
fn bf16Bits(i: u32) -> u32 {
  if (i >= p.n) { return 0u; }
  let b = bitcast<u32>(x[i]);
  if ((b & 0x7fffffffu) > 0x7f800000u) { return (b >> 16u) | 0x40u; }
  return (b + 0x7fffu + ((b >> 16u) & 1u)) >> 16u;
}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let w = (wid.x + wid.y * nwg.x) * ${WG}u + lid;
  if (w >= (p.n + 1u) / 2u) { return; }
  words[w] = bf16Bits(2u * w) | (bf16Bits(2u * w + 1u) << 16u);
}`;

/**
 * Packs n f32 values of `x` into packed BF16 words in `out` (rounded to nearest even, like
 * `f32ToBf16`). Records only.
 */
export function packBf16Gpu(rec: Recorder, x: GPUBuffer, out: GPUBuffer, n: number): void {
  if (!Number.isInteger(n) || n < 0) throw new Error(`packBf16Gpu: n must be >= 0, got ${n}`);
  if (out.size < packedBf16Bytes(n)) {
    throw new Error(
      `packBf16Gpu: out holds ${out.size} bytes, ${n} values need ${packedBf16Bytes(n)}`,
    );
  }
  const k = kernel(rec.gpu, "packBf16", PACK_WGSL);
  // Past one binding: windows of whole output words, each over its two f32 inputs per word
  // (the input windows are twice as large, so they are cut at half the limit).
  const words = Math.ceil(n / 2);
  const outWindows = rowWindows(rec.gpu, out, words, 4, Math.floor(rec.gpu.bindingLimit / 2));
  if (outWindows.length === 1) {
    rec.dispatch(k, [x, out], [n], grid(rec.gpu, Math.ceil(n / 2 / WG)));
    return;
  }
  for (const w of outWindows) {
    const first = 2 * w.row0, count = Math.min(2 * w.rows, n - first);
    const xWindow = { buffer: x, offset: first * 4, size: Math.ceil(count / 2) * 8 };
    rec.dispatch(k, [xWindow, w.binding], [count], grid(rec.gpu, Math.ceil(count / 2 / WG)));
  }
}
