/**
 * Widening F16/BF16 to f32 (exact) and narrowing f32 to them (round to nearest even).
 *
 * @module
 */
import type { Dtype } from "./format.ts";

let f16Table: Uint32Array | null = null;

/** f32 bit patterns of all 65536 f16 values (exact: every f16 is an f32). */
function f16ToF32Table(): Uint32Array {
  if (f16Table) return f16Table;
  const t = new Uint32Array(65536);
  const f = new Float32Array(t.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) {
      // zero or subnormal: mant * 2^-24 is exact in f32
      f[h] = (sign ? -1 : 1) * mant * 2 ** -24;
    } else if (exp === 31) {
      t[h] = (sign | 0x7f800000 | (mant << 13)) >>> 0; // inf, or nan keeping its payload
    } else {
      t[h] = (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
    }
  }
  return f16Table = t;
}

/** Widens raw little-endian bytes of `dtype` into `out` (f32). */
export function widen(dtype: Dtype, bytes: Uint8Array, out: Float32Array): void {
  const n = out.length;
  if (dtype === "F32") {
    new Uint8Array(out.buffer, out.byteOffset, n * 4).set(bytes.subarray(0, n * 4));
    return;
  }
  // bytes may sit at an odd offset; copy when it is not 2-byte aligned
  const src = bytes.byteOffset % 2 === 0
    ? new Uint16Array(bytes.buffer, bytes.byteOffset, n)
    : new Uint16Array(bytes.slice(0, n * 2).buffer);
  const dst = new Uint32Array(out.buffer, out.byteOffset, n);
  if (dtype === "BF16") {
    for (let i = 0; i < n; i++) dst[i] = src[i] << 16;
  } else {
    const t = f16ToF32Table();
    for (let i = 0; i < n; i++) dst[i] = t[src[i]];
  }
}

/** Widens BF16 bit patterns to f32 (exact). */
export function bf16ToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  widen("BF16", new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength), out);
  return out;
}

/** Widens F16 bit patterns to f32 (exact, subnormals, inf and nan included). */
export function f16ToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  widen("F16", new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength), out);
  return out;
}

/** Narrows f32 to BF16 bit patterns, rounding to nearest even; nan stays a (quiet) nan. */
export function f32ToBf16(x: Float32Array): Uint16Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < u.length; i++) {
    const b = u[i];
    if ((b & 0x7fffffff) > 0x7f800000) out[i] = (b >>> 16) | 0x40;
    else out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** Narrows f32 to F16 bit patterns, rounding to nearest even (subnormals, overflow to inf). */
export function f32ToF16(x: Float32Array): Uint16Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < u.length; i++) {
    const b = u[i];
    const sign = (b >>> 16) & 0x8000;
    const exp = (b >>> 23) & 0xff;
    const mant = b & 0x7fffff;
    let h: number;
    if (exp === 255) h = 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
    else if (exp > 142) h = 0x7c00; // |x| >= 2^16: beyond f16's range
    else if (exp >= 113) {
      // normal f16; a carry out of the mantissa correctly bumps the exponent (up to inf)
      h = ((exp - 112) << 10) | (mant >>> 13);
      const rem = mant & 0x1fff;
      if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
    } else if (exp >= 102) {
      // subnormal f16: units of 2^-24
      const m = mant | 0x800000;
      const shift = 126 - exp;
      h = m >>> shift;
      const rem = m & ((1 << shift) - 1);
      const half = 1 << (shift - 1);
      if (rem > half || (rem === half && (h & 1))) h++;
    } else h = 0; // below half the smallest subnormal
    out[i] = sign | h;
  }
  return out;
}
