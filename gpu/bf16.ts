/**
 * Packed BF16 storage: the layout shared by the kernels that read 16-bit frozen weights.
 *
 * A tensor of n BF16 values is stored row-major as ceil(n/2) u32 words, value 2i in the low
 * half of word i and value 2i+1 in the high half (little-endian, so the bytes are exactly those
 * of a BF16 safetensors tensor). BF16 is the high half of an f32, so widening is a 16-bit shift:
 * exact, and no `shader-f16` needed.
 *
 * @module
 */

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
