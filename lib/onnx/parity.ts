/**
 * How closely two implementations agree: the measure quoted for the engine against
 * onnxruntime (tests, bench-onnx).
 *
 * @module
 */

/**
 * The relative error of `got` against `want` over a whole tensor:
 * max_i |got_i - want_i| / max_i |want_i| (the largest difference, in units of the largest
 * magnitude). Per-element ratios would blow up at logits near zero; this one is the error on
 * the tensor's own scale. NaN anywhere gives NaN; a zero `want` gives the plain max difference.
 */
export function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) {
    throw new Error(`relativeError: ${got.length} values against ${want.length}`);
  }
  let diff = 0, scale = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (Number.isNaN(d)) return NaN;
    if (d > diff) diff = d;
    const m = Math.abs(want[i]);
    if (m > scale) scale = m;
  }
  return scale === 0 ? diff : diff / scale;
}
