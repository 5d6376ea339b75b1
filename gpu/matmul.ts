/**
 * Matrix multiplication forward and backward for linear layers with HF `[out, in]` weights.
 *
 * One tiled kernel serves all three products. It computes C[R, C] = A · B over an inner
 * dimension I, with each operand stored either k-contiguous or not, so that
 * `x · wᵀ` (forward), `dy · w` (input gradient) and `dyᵀ · x` (weight gradient) need no
 * transposes in memory. A workgroup of 256 threads owns a 64x64 output tile, each thread a 4x4
 * block, and stages 16-deep slices of both operands in workgroup memory.
 *
 * Determinism and row invariance: every output element is one accumulator that adds the
 * products in ascending inner index (k = 0, 1, ..., I-1, then zero padding up to a multiple of
 * 16), so its bits depend only on its own row of A and column of B, never on how many rows there
 * are. There is no split-K and no atomics. Two other kernels keep that very order (same bits,
 * tested), so decode and training outputs agree bit for bit whichever runs:
 * - on CPU adapters ("serial" style, gpu/device.ts) every product runs gpu/matmul_serial.ts's
 *   barrier-free kernel (8x4 outputs per invocation, vec4 loads along each operand's contiguous
 *   axis): 2-10x faster than this kernel on lavapipe at the tiny world's shapes;
 * - on GPUs a forward of at most {@link FEW_ROWS} rows (decode) runs gpu/matmul_rows.ts's few-row
 *   kernel instead of staging a 64-row tile of mostly padding, and products of at least 128 rows
 *   and columns run gpu/matmul_big.ts's 128x128 tile (8x8 outputs per thread, vec4 loads,
 *   prefetch); this 64x64 kernel takes the rest.
 *
 * Frozen models may store their weights as packed BF16 (two per u32 word, element 2i in the low
 * half): {@link matmulBf16W} is the same template with only B's load changed to widen each value
 * exactly (a 16-bit shift into the high half of an f32), so it gives the very bits `matmul` gives
 * on the same weights widened to f32. The input gradient takes packed weights the same way
 * (`matmulGradInput(..., "bf16")`: a model trained with precision "bf16" reads its packed
 * compute copy in the backward too).
 *
 * @module
 */
import { type Binding, cdiv, kernel, type Recorder } from "./recorder.ts";
import { rowWindows } from "./window.ts";
import { packedBf16Bytes, widenBf16Wgsl } from "./bf16.ts";
import { matmulRows, rowsKernelFits } from "./matmul_rows.ts";
import { matmulRowsShared, type SharedPart } from "./matmul_rows_shared.ts";
import { matmulSerial, serialMatmulFits } from "./matmul_serial.ts";
import { BIG_TILE, matmulBig } from "./matmul_big.ts";

/**
 * Where a product's columns land in y: row stride `ldy` and first column `col0` (a window of a
 * weight too large for one binding writes its own columns of the whole output).
 */
export interface OutputWindow {
  ldy: number;
  col0: number;
}

const TILE = 64; // output rows and columns per workgroup
/** Largest M a GPU's forward gives to the few-row kernel (gpu/matmul_rows.ts). */
export const FEW_ROWS = 32;
const DEPTH = 16; // inner-dimension slice staged per iteration

/**
 * WGSL for C[R, C] (+)= Σ_k A(r, k) · B(k, c).
 * `aKContiguous`: A is stored [R, I] (else [I, R]). `bKContiguous`: B is stored [C, I] (else [I, C]).
 * `bPackedBf16`: B holds packed BF16 words instead of f32 (widened on load; nothing else changes).
 */
function tiledWgsl(aKContiguous: boolean, bKContiguous: boolean, bPackedBf16 = false): string {
  // Each operand tile is DEPTH x 64 values, staged as vec4s of 4 consecutive rows (or columns) at
  // one k, so the inner loop reads one vec4 of A and one of B per k. Threads are mapped so that
  // neighbouring threads read neighbouring addresses in global memory.
  const load = (
    name: string,
    src: string,
    kContig: boolean,
    rowIndexOf: string,
    extent: string,
    packed = false,
  ) => {
    const idx = (r: string, k: string) =>
      kContig ? `${r} * p.inner + ${k}` : `${k} * ${extent} + ${r}`;
    const at = (i: string) => packed ? `${src}Bf16(${i})` : `${src}[${i}]`;
    const map = kContig
      ? `let kk = t % ${DEPTH}u; let q = t / ${DEPTH}u;`
      : `let q = t % ${TILE / 4}u; let kk = t / ${TILE / 4}u;`;
    return /* wgsl */ `
fn load${name}(k0: u32, base: u32, t: u32) {
  ${map}
  let k = k0 + kk;
  var v = vec4f(0.0);
  if (k < p.inner) {
    for (var c = 0u; c < 4u; c++) {
      let ${rowIndexOf} = base + q * 4u + c;
      if (${rowIndexOf} < ${extent}) { v[c] = ${at(idx(rowIndexOf, "k"))}; }
    }
  }
  tile${name}[kk * ${TILE / 4}u + q] = v;
}`;
  };
  return /* wgsl */ `
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<${bPackedBf16 ? "u32" : "f32"}>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
struct P { rows: u32, inner: u32, cols: u32, accumulate: u32, ldy: u32, col0: u32 }
@group(0) @binding(3) var<uniform> p: P;

var<workgroup> tileA: array<vec4f, ${DEPTH * TILE / 4}>;
var<workgroup> tileB: array<vec4f, ${DEPTH * TILE / 4}>;
${bPackedBf16 ? widenBf16Wgsl("bBf16", "b") : ""}
${load("A", "a", aKContiguous, "r", "p.rows")}
${load("B", "b", bKContiguous, "n", "p.cols", bPackedBf16)}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let row0 = wid.y * ${TILE}u;
  let col0 = wid.x * ${TILE}u;
  let tx = t % ${TILE / 4}u;
  let ty = t / ${TILE / 4}u;
  var acc: array<vec4f, 4>;
  for (var k0 = 0u; k0 < p.inner; k0 += ${DEPTH}u) {
    loadA(k0, row0, t);
    loadB(k0, col0, t);
    workgroupBarrier();
    for (var kk = 0u; kk < ${DEPTH}u; kk++) {
      let av = tileA[kk * ${TILE / 4}u + ty];
      let bv = tileB[kk * ${TILE / 4}u + tx];
      acc[0] += av.x * bv;
      acc[1] += av.y * bv;
      acc[2] += av.z * bv;
      acc[3] += av.w * bv;
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let r = row0 + ty * 4u + i;
    if (r >= p.rows) { break; }
    for (var c = 0u; c < 4u; c++) {
      let n = col0 + tx * 4u + c;
      if (n < p.cols) {
        let o = r * p.ldy + p.col0 + n;
        var v = acc[i][c];
        if (p.accumulate != 0u) { v = y[o] + v; }
        y[o] = v;
      }
    }
  }
}`;
}

function dispatchTiled(
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
  bPackedBf16 = false,
  out: OutputWindow = { ldy: cols, col0: 0 },
): void {
  for (const [what, v] of [["rows", rows], ["inner", inner], ["cols", cols]] as const) {
    if (!Number.isInteger(v) || v < 0) {
      throw new Error(`${name}: ${what} must be a whole number, got ${v}`);
    }
  }
  const k = kernel(rec.gpu, name, tiledWgsl(aKContiguous, bKContiguous, bPackedBf16));
  rec.dispatch(k, [a, b, y], [rows, inner, cols, accumulate ? 1 : 0, out.ldy, out.col0], [
    cdiv(cols, TILE),
    cdiv(rows, TILE),
    1,
  ]);
}

/**
 * The forward product y[M,N] (+)= x[M,K] · w[N,K]ᵀ with the 64x64 tiled kernel whatever M is
 * (f32 or packed BF16 weights). {@link matmul} picks it for M above the few-row range; the
 * benchmarks and bit tests call it directly as the reference the other kernels must equal.
 */
export function matmulTiled(
  rec: Recorder,
  x: GPUBuffer,
  w: GPUBuffer,
  y: GPUBuffer,
  M: number,
  K: number,
  N: number,
  accumulate = false,
  format: "f32" | "bf16" = "f32",
): void {
  const name = format === "bf16" ? "matmulBf16W" : "matmul";
  dispatchTiled(rec, name, true, true, x, w, y, M, K, N, accumulate, format === "bf16");
}

/** {@link matmulGradInput} with the 64x64 tiled kernel whatever the device (a reference). */
export function matmulGradInputTiled(
  rec: Recorder,
  dy: GPUBuffer,
  w: GPUBuffer,
  dx: GPUBuffer,
  M: number,
  K: number,
  N: number,
  accumulate = false,
  format: "f32" | "bf16" = "f32",
): void {
  const bf16 = format === "bf16";
  const name = bf16 ? "matmulGradInputBf16W" : "matmulGradInput";
  dispatchTiled(rec, name, true, false, dy, w, dx, M, N, K, accumulate, bf16);
}

/** {@link matmulGradWeight} with the 64x64 tiled kernel whatever the device (a reference). */
export function matmulGradWeightTiled(
  rec: Recorder,
  dy: GPUBuffer,
  x: GPUBuffer,
  dw: GPUBuffer,
  M: number,
  K: number,
  N: number,
  accumulate = false,
): void {
  dispatchTiled(rec, "matmulGradWeight", false, false, dy, x, dw, N, M, K, accumulate);
}

/**
 * Linear layer forward: y[M,N] (+)= x[M,K] · w[N,K]ᵀ (w in HF `[out, in]` layout).
 * `y` must not alias `x` or `w`. Records only.
 */
export function matmul(
  rec: Recorder,
  x: GPUBuffer,
  w: GPUBuffer,
  y: GPUBuffer,
  M: number,
  K: number,
  N: number,
  accumulate = false,
): void {
  product(rec, "matmul", true, true, x, w, y, M, K, N, accumulate);
}

/**
 * Linear layer forward with packed BF16 weights: y[M,N] (+)= x[M,K] · w[N,K]ᵀ, where `wPacked`
 * holds the N·K BF16 values of w row-major, two per u32 word (the layout of gpu/bf16.ts). Each weight is widened exactly in the shader and then
 * accumulated by the same code in the same order as {@link matmul}, so the result is
 * bit-identical to `matmul` on the weights widened to f32. Forward only (frozen models).
 * Records only.
 */
export function matmulBf16W(
  rec: Recorder,
  x: GPUBuffer,
  wPacked: GPUBuffer,
  y: GPUBuffer,
  M: number,
  K: number,
  N: number,
  accumulate = false,
): void {
  const need = packedBf16Bytes(N * K);
  if (wPacked.size < need) {
    throw new Error(
      `matmulBf16W: w holds ${wPacked.size} bytes, [${N}, ${K}] packed BF16 needs ${need}`,
    );
  }
  product(rec, "matmulBf16W", true, true, x, wPacked, y, M, K, N, accumulate, "bf16");
}

/**
 * Linear layer forward with a residual epilogue: y[M,N] = r[M,N] + x[M,K] · w[N,K]ᵀ, the bits of
 * copying r into y and accumulating (one dispatch, no copy; `y` may alias neither `r` nor `x`).
 * f32 or packed BF16 weights. Records only.
 */
export function matmulResidual(
  rec: Recorder,
  x: GPUBuffer,
  w: GPUBuffer,
  r: GPUBuffer,
  y: GPUBuffer,
  M: number,
  K: number,
  N: number,
  format: "f32" | "bf16" = "f32",
): void {
  product(rec, "matmulResidual", true, true, x, w, y, M, K, N, false, format, r);
}

/**
 * Linear forwards that share their input, y_i[M,N_i] = x[M,K] · w_i[N_i,K]ᵀ for 2 or 3 weights of
 * one format (q|k|v, gate|up): one dispatch of gpu/matmul_rows_shared.ts where the few-row kernel
 * would run each (a GPU, M <= FEW_ROWS, every weight within one binding), else the separate
 * products. The bits are those of the separate products either way. Records only.
 */
export function matmulShared(
  rec: Recorder,
  x: GPUBuffer,
  parts: SharedPart[],
  M: number,
  K: number,
  format: "f32" | "bf16" = "f32",
): void {
  const fits = (p: SharedPart) =>
    rowWindows(rec.gpu, p.w, p.N, format === "bf16" ? K * 2 : K * 4).length === 1;
  // Exactly where product() would pick the few-row kernel for each part.
  const serial = rec.gpu.info.kernels === "serial" && serialMatmulFits(K);
  const shared = !serial && M > 0 && M <= FEW_ROWS && rowsKernelFits(K) && parts.every(fits);
  if (shared && parts.length >= 2) {
    matmulRowsShared(rec, x, parts, M, K, format);
    return;
  }
  const name = format === "bf16" ? "matmulBf16W" : "matmul";
  for (const p of parts) product(rec, name, true, true, x, p.w, p.y, M, K, p.N, false, format);
}

/**
 * Every product's dispatch: the serial kernel on CPU adapters (gpu/matmul_serial.ts); on GPUs
 * the few-row kernel for a forward of at most FEW_ROWS rows (gpu/matmul_rows.ts), else the tiled
 * kernel. All give the same bits. `residual`: y = residual + A·B (a copy and an accumulation in
 * the tiled kernel).
 */
function product(
  rec: Recorder,
  name: string,
  aKContiguous: boolean,
  bKContiguous: boolean,
  a: GPUBuffer,
  b: GPUBuffer,
  y: GPUBuffer,
  rows: number,
  inner: number,
  cols: number,
  accumulate: boolean,
  format: "f32" | "bf16" = "f32",
  residual?: GPUBuffer,
): void {
  for (const [what, v] of [["rows", rows], ["inner", inner], ["cols", cols]] as const) {
    if (!Number.isInteger(v) || v < 0) {
      throw new Error(`${name}: ${what} must be a whole number, got ${v}`);
    }
  }
  if (rows === 0 || cols === 0) return;
  const bf16 = format === "bf16";
  const serial = rec.gpu.info.kernels === "serial" && serialMatmulFits(inner);
  const fewRows = aKContiguous && bKContiguous && rows <= FEW_ROWS && rowsKernelFits(inner);
  if (!serial && !fewRows && residual) rec.copy(residual, 0, y, 0, rows * cols * 4);
  // A weight larger than one binding (an LM head on lavapipe) runs as windows of its rows, each
  // writing its own columns of y; every element's sum is unchanged.
  const windows = bKContiguous
    ? rowWindows(rec.gpu, b, cols, bf16 ? inner * 2 : inner * 4)
    : [{ row0: 0, rows: cols, binding: b as Binding }];
  for (const w of windows) {
    const out = { ldy: cols, col0: w.row0 };
    const bw = w.binding;
    if (serial) {
      const opts = { accumulate, residual, bBf16: bf16, out };
      matmulSerial(rec, name, aKContiguous, bKContiguous, a, bw, y, rows, inner, w.rows, opts);
    } else if (fewRows) {
      matmulRows(rec, a, bw, y, rows, inner, w.rows, { format, accumulate, residual, out });
    } else {
      const acc = accumulate || residual !== undefined;
      const tiled = [aKContiguous, bKContiguous, a, bw, y, rows, inner, w.rows, acc, bf16] as const;
      if (rows >= BIG_TILE && w.rows >= BIG_TILE) matmulBig(rec, name, ...tiled, out);
      else dispatchTiled(rec, name, ...tiled, out);
    }
  }
}

/**
 * Input gradient: dx[M,K] (+)= dy[M,N] · w[N,K], with w f32 or (`format` "bf16") packed BF16
 * (the compute copy of a model trained with precision "bf16"): the same kernel with only w's
 * load widened, so the bits are those of the f32 product on the widened weights. Records only.
 */
export function matmulGradInput(
  rec: Recorder,
  dy: GPUBuffer,
  w: GPUBuffer,
  dx: GPUBuffer,
  M: number,
  K: number,
  N: number,
  accumulate = false,
  format: "f32" | "bf16" = "f32",
): void {
  if (format === "bf16") {
    const need = packedBf16Bytes(N * K);
    if (w.size < need) {
      throw new Error(
        `matmulGradInput: w holds ${w.size} bytes, [${N}, ${K}] packed BF16 needs ${need}`,
      );
    }
  }
  const name = format === "bf16" ? "matmulGradInputBf16W" : "matmulGradInput";
  product(rec, name, true, false, dy, w, dx, M, N, K, accumulate, format);
}

/**
 * Weight gradient: dw[N,K] (+)= dy[M,N]ᵀ · x[M,K], summed over rows m in ascending order.
 * Records only.
 */
export function matmulGradWeight(
  rec: Recorder,
  dy: GPUBuffer,
  x: GPUBuffer,
  dw: GPUBuffer,
  M: number,
  K: number,
  N: number,
  accumulate = false,
): void {
  product(rec, "matmulGradWeight", false, false, dy, x, dw, N, M, K, accumulate);
}
