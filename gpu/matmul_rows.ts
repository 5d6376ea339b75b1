/**
 * The few-row forward y[M,N] (+)= x[M,K] · w[N,K]ᵀ for GPUs at small M (decode, scoring heads):
 * the same bits as gpu/matmul.ts's tiled kernel, without its 64-row tile.
 *
 * At M = 1..32 the tiled kernel stages a 64-row tile of mostly padding rows, so decode does up to
 * 64x the arithmetic it needs and launches only N/64 workgroups. Here a workgroup owns
 * {@link COLS} columns; its 256 threads stage a COLS x {@link SLICE} weight slice in workgroup
 * memory with coalesced vec4 loads (the next slice prefetched into registers while the current
 * one is used, the tile padded against bank conflicts), and thread (column, lane) accumulates rows
 * lane, lane + 16, ... of its column, {@link ROWS} of them. Every element is one accumulator
 * adding the products in ascending k from +0, exactly like the tiled kernel (whose zero-padded
 * tail adds +0, which changes nothing): the tiled kernel's bits (tests/gpu_matmul_rows_test.ts,
 * also at M = 1 and 32 against M = 3200). Needs K % 4 == 0 (vec4 weight rows).
 *
 * CPU adapters do not use it: their "serial" style runs every product through
 * gpu/matmul_serial.ts (barriers are what costs there).
 *
 * Weights may be f32 or packed BF16 (gpu/bf16.ts; widened exactly on load), and the epilogue may
 * add a residual buffer (y = r + x·wᵀ, the bits of copying r into y and accumulating).
 *
 * @module
 */
import { type Binding, cdiv, kernel, type Recorder } from "./recorder.ts";

/** Rows one thread accumulates. */
export const ROWS = 8;
/** Columns per workgroup. */
export const COLS = 16;
/** Inner-dimension slice staged per step. */
export const SLICE = 64;
/** Row lanes per column (256 threads = COLS x LANES). */
const LANES = 256 / COLS;
/** Rows one workgroup covers (LANES lanes x ROWS rows each). */
export const WG_ROWS = LANES * ROWS;

/** How the epilogue combines the product with y. */
export type Epilogue = "store" | "accumulate" | "residual";

/** Which storage the weight has. */
export type WeightFormat = "f32" | "bf16";

function weightDecl(format: WeightFormat): string {
  return format === "f32"
    ? "@group(0) @binding(1) var<storage, read> w: array<vec4f>;"
    : "@group(0) @binding(1) var<storage, read> w: array<vec2u>;";
}

/** WGSL `loadW(i) -> vec4f`: weight values 4i..4i+3 of the flat [N, K] array, widened. */
function loadWFn(format: WeightFormat): string {
  return format === "f32" ? "fn loadW(i: u32) -> vec4f { return w[i]; }" : /* wgsl */ `
fn loadW(i: u32) -> vec4f {
  let q = w[i];
  return vec4f(bitcast<f32>(q.x << 16u), bitcast<f32>(q.x & 0xffff0000u),
               bitcast<f32>(q.y << 16u), bitcast<f32>(q.y & 0xffff0000u));
}`;
}

/** Bindings: x, w, (r), y, params. */
function bindings(format: WeightFormat, epilogue: Epilogue): string {
  const res = epilogue === "residual";
  return /* wgsl */ `
@group(0) @binding(0) var<storage, read> x: array<vec4f>;
${weightDecl(format)}
${res ? "@group(0) @binding(2) var<storage, read> r: array<f32>;" : ""}
@group(0) @binding(${res ? 3 : 2}) var<storage, read_write> y: array<f32>;
struct P { rows: u32, inner: u32, cols: u32, accumulate: u32, ldy: u32, col0: u32 }
@group(0) @binding(${res ? 4 : 3}) var<uniform> p: P;
${loadWFn(format)}
fn finish(o: u32, acc: f32) {
  var v = acc;
  ${
    epilogue === "residual"
      ? "v = r[o] + v;"
      : epilogue === "accumulate"
      ? "if (p.accumulate != 0u) { v = y[o] + v; }"
      : ""
  }
  y[o] = v;
}`;
}

/** Adds x[row, 4q..4q+3] · wv to accumulator `acc` in ascending k, one product at a time. */
const madd = (acc: string, xv: string, wv: string) =>
  `${acc} = ${acc} + ${xv}.x * ${wv}.x; ${acc} = ${acc} + ${xv}.y * ${wv}.y; ` +
  `${acc} = ${acc} + ${xv}.z * ${wv}.z; ${acc} = ${acc} + ${xv}.w * ${wv}.w;`;

/**
 * The few-row kernel's `main` over `cols` output columns (a WGSL expression): `loadW(c, q)` is the
 * WGSL of vec4 q of weight column c (both in range), `store(row, col, acc)` the statement that
 * writes one output. gpu/matmul_rows_shared.ts builds on it, so both keep one arithmetic.
 */
export function rowsMainWgsl(
  cols: string,
  loadW: (c: string, q: string) => string,
  store: (row: string, col: string, acc: string) => string,
): string {
  const S4 = SLICE / 4; // vec4s per column per slice
  const STRIDE = S4 + 1; // padded row of the staged tile (spreads columns over banks)
  const LOADS = (COLS * S4) / 256; // vec4 loads per thread per slice
  const accs = Array.from({ length: ROWS }, (_, i) => i);
  const load = (c: string, q: string) =>
    `select(vec4f(0.0), ${loadW(`min(${c}, ${cols} - 1u)`, `min(${q}, K4 - 1u)`)},
                    ${c} < ${cols} && ${q} < K4)`;
  return /* wgsl */ `
var<workgroup> tile: array<vec4f, ${COLS * STRIDE}>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let n0 = wid.x * ${COLS}u;
  let col = t % ${COLS}u;
  let lane = t / ${COLS}u;
  let n = n0 + col;
  let K4 = p.inner / 4u;
  let last = p.rows - 1u;
  let r0 = wid.y * ${WG_ROWS}u + lane;
  ${accs.map((i) => `let xb${i} = min(r0 + ${i * LANES}u, last) * K4;`).join("\n  ")}
  ${accs.map((i) => `var a${i} = 0.0;`).join(" ")}
  // Thread t loads vec4 (t % S4) of column t / S4 (+ 256 / S4 per further load): consecutive
  // threads read consecutive 16 bytes of one weight row.
  var pre: array<vec4f, ${LOADS}>;
  for (var j = 0u; j < ${LOADS}u; j++) {
    let e = t + j * 256u;
    let c = n0 + e / ${S4}u;
    let q = e % ${S4}u;
    pre[j] = ${load("c", "q")};
  }
  for (var q0 = 0u; q0 < K4; q0 += ${S4}u) {
    workgroupBarrier();
    for (var j = 0u; j < ${LOADS}u; j++) {
      let e = t + j * 256u;
      tile[(e / ${S4}u) * ${STRIDE}u + e % ${S4}u] = pre[j];
    }
    workgroupBarrier();
    // Prefetch the next slice while this one is used.
    for (var j = 0u; j < ${LOADS}u; j++) {
      let e = t + j * 256u;
      let c = n0 + e / ${S4}u;
      let q = q0 + ${S4}u + e % ${S4}u;
      pre[j] = ${load("c", "q")};
    }
    let qn = min(${S4}u, K4 - q0);
    for (var qq = 0u; qq < qn; qq++) {
      let wv = tile[col * ${STRIDE}u + qq];
      let q = q0 + qq;
      ${
    accs.map((i) => `{ let xv = x[xb${i} + q]; ${madd(`a${i}`, "xv", "wv")} }`).join("\n      ")
  }
    }
  }
  if (n < ${cols}) {
    ${
    accs.map((i) => {
      const r = `r0 + ${i * LANES}u`;
      return `if (${r} < p.rows) { ${store(r, "n", `a${i}`)} }`;
    }).join("\n    ")
  }
  }
}`;
}

/** COLS columns per workgroup, weight slices staged in workgroup memory. */
function rowsWgsl(format: WeightFormat, epilogue: Epilogue): string {
  return bindings(format, epilogue) + rowsMainWgsl(
    "p.cols",
    (c, q) => `loadW(${c} * K4 + ${q})`,
    (row, col, acc) => `finish((${row}) * p.ldy + p.col0 + ${col}, ${acc});`,
  );
}

/** Whether the few-row kernel can compute an inner dimension of K (vec4 weight rows). */
export function rowsKernelFits(K: number): boolean {
  return K % 4 === 0 && K > 0;
}

/**
 * Records y[M,N] (+)= x[M,K] · w[N,K]ᵀ with the few-row kernel; with `residual`,
 * y = residual + x·wᵀ instead. K must be a multiple of 4 ({@link rowsKernelFits}).
 */
export function matmulRows(
  rec: Recorder,
  x: GPUBuffer,
  w: Binding,
  y: GPUBuffer,
  M: number,
  K: number,
  N: number,
  opts: {
    format?: WeightFormat;
    accumulate?: boolean;
    residual?: GPUBuffer;
    /** Row stride and first column of this product's columns in y (default: all of y). */
    out?: { ldy: number; col0: number };
  } = {},
): void {
  if (!rowsKernelFits(K)) throw new Error(`matmulRows: K = ${K} must be a positive multiple of 4`);
  const out = opts.out ?? { ldy: N, col0: 0 };
  const format = opts.format ?? "f32";
  const epilogue: Epilogue = opts.residual ? "residual" : opts.accumulate ? "accumulate" : "store";
  const bufs = opts.residual ? [x, w, opts.residual, y] : [x, w, y];
  const k = kernel(rec.gpu, `matmulRows.${format}.${epilogue}`, rowsWgsl(format, epilogue));
  rec.dispatch(k, bufs, [M, K, N, opts.accumulate ? 1 : 0, out.ldy, out.col0], [
    cdiv(N, COLS),
    cdiv(M, WG_ROWS),
    1,
  ]);
}
