/**
 * A small, self-contained tiled WGSL matmul used only by gpu-probe to check that an adapter
 * computes correctly (workgroup memory, barriers, ragged edges) and to time it. The engine's own
 * matmul lives in gpu/matmul.ts; the probe will switch to it once it lands.
 *
 * @module
 */
import { cdiv, kernel, type Recorder } from "../../gpu/recorder.ts";

const TILE = 16;

const MATMUL_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> a: array<f32>;       // [m, k] row-major
@group(0) @binding(1) var<storage, read> b: array<f32>;       // [k, n] row-major
@group(0) @binding(2) var<storage, read_write> c: array<f32>; // [m, n] row-major
struct P { m: u32, k: u32, n: u32 }
@group(0) @binding(3) var<uniform> p: P;
var<workgroup> ta: array<array<f32, ${TILE}>, ${TILE}>;
var<workgroup> tb: array<array<f32, ${TILE}>, ${TILE}>;
@compute @workgroup_size(${TILE}, ${TILE})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = wid.y * ${TILE}u + lid.y;
  let col = wid.x * ${TILE}u + lid.x;
  var acc = 0.0;
  let tiles = (p.k + ${TILE - 1}u) / ${TILE}u;
  for (var t = 0u; t < tiles; t++) {
    let ka = t * ${TILE}u + lid.x;
    let kb = t * ${TILE}u + lid.y;
    ta[lid.y][lid.x] = select(0.0, a[row * p.k + ka], row < p.m && ka < p.k);
    tb[lid.y][lid.x] = select(0.0, b[kb * p.n + col], kb < p.k && col < p.n);
    workgroupBarrier();
    for (var i = 0u; i < ${TILE}u; i++) { acc = acc + ta[lid.y][i] * tb[i][lid.x]; }
    workgroupBarrier();
  }
  if (row < p.m && col < p.n) { c[row * p.n + col] = acc; }
}`;

/** Records c[m,n] = a[m,k] @ b[k,n] (f32, row-major; c must not alias a or b). */
export function probeMatmul(
  rec: Recorder,
  a: GPUBuffer,
  b: GPUBuffer,
  c: GPUBuffer,
  m: number,
  k: number,
  n: number,
): void {
  const kern = kernel(rec.gpu, "probe_matmul", MATMUL_WGSL);
  rec.dispatch(kern, [a, b, c], [m, k, n], [cdiv(n, TILE), cdiv(m, TILE), 1]);
}

/**
 * Reference c = a @ b in f64, plus each element's scale sum_k |a_ik * b_kj| (the size of the
 * rounding error an f32 sum can make is proportional to it).
 */
export function referenceMatmul(
  a: Float32Array,
  b: Float32Array,
  m: number,
  k: number,
  n: number,
): { c: Float64Array; scale: Float64Array } {
  const c = new Float64Array(m * n);
  const scale = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0, sa = 0;
      for (let t = 0; t < k; t++) {
        const x = a[i * k + t] * b[t * n + j];
        s += x;
        sa += Math.abs(x);
      }
      c[i * n + j] = s;
      scale[i * n + j] = sa;
    }
  }
  return { c, scale };
}

/** Largest absolute error and largest error relative to the element's scale. */
export function matmulErrors(
  got: Float32Array,
  ref: { c: Float64Array; scale: Float64Array },
): { maxAbsError: number; maxScaledError: number; worstIndex: number } {
  if (got.length !== ref.c.length) {
    throw new Error(`matmul result has ${got.length} elements, expected ${ref.c.length}`);
  }
  let maxAbsError = 0, maxScaledError = 0, worstIndex = -1;
  for (let i = 0; i < got.length; i++) {
    const d = Math.abs(got[i] - ref.c[i]);
    if (!Number.isFinite(d)) return { maxAbsError: NaN, maxScaledError: NaN, worstIndex: i };
    const scaled = d / Math.max(ref.scale[i], 1e-30);
    if (d > maxAbsError) maxAbsError = d;
    if (scaled > maxScaledError) [maxScaledError, worstIndex] = [scaled, i];
  }
  return { maxAbsError, maxScaledError, worstIndex };
}
