/**
 * The large-tile matrix product for GPUs: C[R, C] (+)= Σ_k A(r, k) · B(k, c) in the operand
 * conventions of gpu/matmul.ts (each operand k-contiguous or not), for products of at least
 * {@link BIG_TILE} rows and columns. The same bits as the 64x64 tiled kernel: every element is
 * one accumulator adding A·B in ascending k from +0 (tests/gpu_matmul_big_test.ts).
 *
 * Against the 64x64 kernel (4x4 outputs per thread, scalar bounds-checked loads, a transposed
 * tile store with 8-way bank conflicts, no overlap of loads and arithmetic):
 * - a 128x128 tile, 8x8 outputs per thread (rows ty*4.. and 64+ty*4.., columns tx*4.. and
 *   64+tx*4..), so each k step reads 4 vec4s from workgroup memory for 64 multiply-adds;
 * - vec4 global loads along whichever axis of an operand is contiguous (when that axis is a
 *   multiple of 4), neighbouring threads on neighbouring addresses;
 * - a padded staging layout (row stride 33 vec4s), so the transposing stores of a k-contiguous
 *   operand spread over the banks;
 * - the next slice prefetched into registers while the current one is multiplied;
 * - interior tiles load without bounds checks (a uniform branch per workgroup and slice).
 * Untested for speed here (no GPU in the session that wrote it): bench-matmul times it against the
 * 64x64 kernel on a GPU ("engine" vs "tiled").
 *
 * @module
 */
import { type Binding, cdiv, kernel, type Recorder } from "./recorder.ts";
import { widenBf16Wgsl } from "./bf16.ts";

/** Output rows and columns per workgroup; products smaller than this use the 64x64 kernel. */
export const BIG_TILE = 128;
const DEPTH = 16; // k per staged slice
const STRIDE = BIG_TILE / 4 + 1; // vec4s per staged k-row, padded

/** An operand layout: which operands are k-contiguous, B's storage, which get vec4 views. */
interface BigLayout {
  aKContiguous: boolean;
  bKContiguous: boolean;
  bBf16: boolean;
  /** Interior loads through an array<vec4f> view (the loaded axis keeps 16-byte alignment). */
  aVec: boolean;
  bVec: boolean;
}

/** The storage bindings of a layout in order (a shader must use every one it declares). */
function bigBindings(l: BigLayout): { name: string; type: string; of: "a" | "b" | "y" }[] {
  return [
    { name: "a", type: "array<f32>", of: "a" },
    ...(l.aVec ? [{ name: "aV", type: "array<vec4f>", of: "a" as const }] : []),
    { name: "b", type: l.bBf16 ? "array<u32>" : "array<f32>", of: "b" },
    ...(l.bVec ? [{ name: "bV", type: "array<vec4f>", of: "b" as const }] : []),
    { name: "y", type: "array<f32>", of: "y" },
  ];
}

/** WGSL of the large-tile kernel for one operand layout (see the module doc). */
function bigWgsl(l: BigLayout): string {
  const { aKContiguous, bKContiguous, bBf16 } = l;
  // Loads of one operand's 16 x 128 slice: 512 vec4s, 2 per thread, into registers.
  const loads = (
    name: "A" | "B",
    src: string,
    kContig: boolean,
    extent: string,
    packed: boolean,
    vec: boolean,
  ) => {
    const at = (i: string) => (packed ? `${src}Bf16(${i})` : `${src}[${i}]`);
    // Four consecutive elements from `first` on: one vec4 load where the view is aligned.
    const four = (first: string, step: (e: number) => string) =>
      vec
        ? `${src}V[(${first}) / 4u]`
        : `vec4f(${at(step(0))}, ${at(step(1))}, ${at(step(2))}, ${at(step(3))})`;
    // Element (line, k) of the operand in its flat array.
    const idx = (line: string, k: string) =>
      kContig ? `(${line}) * p.inner + (${k})` : `(${k}) * ${extent} + (${line})`;
    const checked = (line: string, k: string) =>
      `select(0.0, ${at(idx(line, k))}, (${line}) < ${extent} && (${k}) < p.inner)`;
    if (kContig) {
      // Thread t: line t / 4 (+ 64 for the second load), k quad t % 4: 64 contiguous bytes per
      // 4 threads. Returned vec4 = 4 consecutive k of one line.
      return /* wgsl */ `
fn fetch${name}(k0: u32, base: u32, t: u32, j: u32, interior: bool) -> vec4f {
  let line = base + t / 4u + 64u * j;
  let k = k0 + (t % 4u) * 4u;
  if (interior) {
    return ${four(idx("line", "k"), (e) => idx("line", `k + ${e}u`))};
  }
  return vec4f(${checked("line", "k")}, ${checked("line", "k + 1u")}, ${
        checked("line", "k + 2u")
      }, ${checked("line", "k + 3u")});
}
fn stage${name}(v: vec4f, t: u32, j: u32) {
  let line = t / 4u + 64u * j;
  let kq = (t % 4u) * 4u;
  for (var e = 0u; e < 4u; e++) {
    tile${name}[(kq + e) * ${STRIDE}u + line / 4u][line % 4u] = v[e];
  }
}`;
    }
    // Thread t: k = t / 32 (+ 8 for the second load), line quad t % 32. Returned vec4 = 4
    // consecutive lines at one k.
    return /* wgsl */ `
fn fetch${name}(k0: u32, base: u32, t: u32, j: u32, interior: bool) -> vec4f {
  let k = k0 + t / 32u + 8u * j;
  let line = base + (t % 32u) * 4u;
  if (interior) {
    return ${four(idx("line", "k"), (e) => idx(`line + ${e}u`, "k"))};
  }
  return vec4f(${checked("line", "k")}, ${checked("line + 1u", "k")}, ${
      checked("line + 2u", "k")
    }, ${checked("line + 3u", "k")});
}
fn stage${name}(v: vec4f, t: u32, j: u32) {
  tile${name}[(t / 32u + 8u * j) * ${STRIDE}u + t % 32u] = v;
}`;
  };
  const decls = bigBindings(l).map((x, i) =>
    `@group(0) @binding(${i}) var<storage, ${
      x.of === "y" ? "read_write" : "read"
    }> ${x.name}: ${x.type};`
  );
  return /* wgsl */ `
${decls.join("\n")}
struct P { rows: u32, inner: u32, cols: u32, accumulate: u32, ldy: u32, col0: u32 }
@group(0) @binding(${decls.length}) var<uniform> p: P;
var<workgroup> tileA: array<vec4f, ${DEPTH * STRIDE}>;
var<workgroup> tileB: array<vec4f, ${DEPTH * STRIDE}>;
${bBf16 ? widenBf16Wgsl("bBf16", "b") : ""}
${loads("A", "a", aKContiguous, "p.rows", false, l.aVec)}
${loads("B", "b", bKContiguous, "p.cols", bBf16, l.bVec)}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let row0 = wid.y * ${BIG_TILE}u;
  let col0 = wid.x * ${BIG_TILE}u;
  let tx = t % 16u;
  let ty = t / 16u;
  let full = row0 + ${BIG_TILE}u <= p.rows && col0 + ${BIG_TILE}u <= p.cols;
  // acc[2 * i + h]: row (i < 4 ? ty * 4 + i : 64 + ty * 4 + i - 4), columns h * 64 + tx * 4 + 0..3.
  var acc: array<vec4f, 16>;
  var ra0 = fetchA(0u, row0, t, 0u, full && ${DEPTH}u <= p.inner);
  var ra1 = fetchA(0u, row0, t, 1u, full && ${DEPTH}u <= p.inner);
  var rb0 = fetchB(0u, col0, t, 0u, full && ${DEPTH}u <= p.inner);
  var rb1 = fetchB(0u, col0, t, 1u, full && ${DEPTH}u <= p.inner);
  for (var k0 = 0u; k0 < p.inner; k0 += ${DEPTH}u) {
    workgroupBarrier();
    stageA(ra0, t, 0u);
    stageA(ra1, t, 1u);
    stageB(rb0, t, 0u);
    stageB(rb1, t, 1u);
    workgroupBarrier();
    // Prefetch the next slice (past the end: zeros, never used).
    let kn = k0 + ${DEPTH}u;
    let inner = full && kn + ${DEPTH}u <= p.inner;
    ra0 = fetchA(kn, row0, t, 0u, inner);
    ra1 = fetchA(kn, row0, t, 1u, inner);
    rb0 = fetchB(kn, col0, t, 0u, inner);
    rb1 = fetchB(kn, col0, t, 1u, inner);
    for (var kk = 0u; kk < ${DEPTH}u; kk++) {
      let a0 = tileA[kk * ${STRIDE}u + ty];
      let a1 = tileA[kk * ${STRIDE}u + 16u + ty];
      let b0 = tileB[kk * ${STRIDE}u + tx];
      let b1 = tileB[kk * ${STRIDE}u + 16u + tx];
      acc[0] += a0.x * b0; acc[1] += a0.x * b1;
      acc[2] += a0.y * b0; acc[3] += a0.y * b1;
      acc[4] += a0.z * b0; acc[5] += a0.z * b1;
      acc[6] += a0.w * b0; acc[7] += a0.w * b1;
      acc[8] += a1.x * b0; acc[9] += a1.x * b1;
      acc[10] += a1.y * b0; acc[11] += a1.y * b1;
      acc[12] += a1.z * b0; acc[13] += a1.z * b1;
      acc[14] += a1.w * b0; acc[15] += a1.w * b1;
    }
  }
  for (var i = 0u; i < 8u; i++) {
    let r = row0 + select(64u + ty * 4u + i - 4u, ty * 4u + i, i < 4u);
    if (r >= p.rows) { continue; }
    for (var h = 0u; h < 2u; h++) {
      for (var c = 0u; c < 4u; c++) {
        let n = col0 + h * 64u + tx * 4u + c;
        if (n < p.cols) {
          let o = r * p.ldy + p.col0 + n;
          var v = acc[2u * i + h][c];
          if (p.accumulate != 0u) { v = y[o] + v; }
          y[o] = v;
        }
      }
    }
  }
}`;
}

/**
 * Records C[rows, cols] (+)= A · B with the large-tile kernel (operand conventions of
 * gpu/matmul.ts's tiled kernel; `bBf16`: B is packed BF16, either layout). Records only.
 */
export function matmulBig(
  rec: Recorder,
  name: string,
  aKContiguous: boolean,
  bKContiguous: boolean,
  a: GPUBuffer,
  b: Binding,
  y: GPUBuffer,
  rows: number,
  inner: number,
  cols: number,
  accumulate: boolean,
  bBf16 = false,
  out = { ldy: cols, col0: 0 },
): void {
  const layout: BigLayout = {
    aKContiguous,
    bKContiguous,
    bBf16,
    aVec: (aKContiguous ? inner : rows) % 4 === 0,
    bVec: !bBf16 && (bKContiguous ? inner : cols) % 4 === 0,
  };
  const key = `${name}.big.${+aKContiguous}${+bKContiguous}${+bBf16}${+layout.aVec}${+layout.bVec}`;
  const k = kernel(rec.gpu, key, bigWgsl(layout));
  const of = { a, b, y };
  const bufs = bigBindings(layout).map((x) => of[x.of]);
  rec.dispatch(k, bufs, [rows, inner, cols, accumulate ? 1 : 0, out.ldy, out.col0], [
    cdiv(cols, BIG_TILE),
    cdiv(rows, BIG_TILE),
    1,
  ]);
}
