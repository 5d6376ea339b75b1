/**
 * Few-row matrix products y[M,N] (+)= x[M,K] · w[N,K]ᵀ for small M (decode, scoring heads):
 * the same bits as gpu/matmul.ts's tiled kernel, without its 64-row tile.
 *
 * At M = 1..32 the tiled kernel stages a 64-row tile of mostly padding rows, so decode does up to
 * 64x the arithmetic it needs and launches N/64 workgroups. These kernels give every output
 * column to one accumulator chain per row, adding the products in ascending k from +0, exactly
 * like the tiled kernel (its zero-padded tail adds +0, which changes nothing): each element's
 * bits are the tiled kernel's, so generation and training log-probs stay identical
 * (tests/gpu_matmul_rows_test.ts compares them bit for bit at M = 1, 32 and the training rows).
 *
 * Two layouts, chosen like the other row-wise kernels (gpu/device.ts KernelStyle):
 * - "serial" (CPU adapters): one invocation per ({@link SERIAL_COLS} columns, {@link ROWS} rows),
 *   no workgroup memory and no barriers; it reads its weight rows as vec4s.
 * - "workgroup" (GPUs): a workgroup owns {@link COLS} columns; its 256 threads stage a
 *   COLS x {@link SLICE} weight slice in workgroup memory with coalesced vec4 loads (the next
 *   slice is prefetched into registers while the current one is used), and thread (column,
 *   lane) accumulates rows lane, lane + 16, ... of its column.
 * Both need K % 4 == 0 (vec4 weight rows); other shapes use the tiled kernel.
 *
 * Weights may be f32 or packed BF16 (gpu/bf16.ts; widened exactly on load), and the epilogue may
 * add a residual buffer (y = r + x·wᵀ, the bits of copying r into y and accumulating).
 *
 * @module
 */
import { cdiv, kernel, type Recorder } from "./recorder.ts";
import { SERIAL_LOOP_BUDGET } from "./serial.ts";

/** Rows one invocation accumulates (the row-group height), in both layouts. */
export const ROWS = 8;
/**
 * Columns one serial invocation accumulates. Measured on lavapipe (2 cores), 4 columns x 8 rows
 * per invocation ran 1.5-2.5x faster than one column (M = 1..32, K = 64..1024): each x vec4 is
 * loaded once for four columns.
 */
export const SERIAL_COLS = 4;
/** Invocations per serial workgroup: small, so that narrow products still spread over cores. */
const SERIAL_WG = 16;
/** Columns per workgroup in the workgroup layout. */
export const COLS = 16;
/** Inner-dimension slice staged per step in the workgroup layout. */
export const SLICE = 64;
/** Row lanes per column in the workgroup layout (256 threads = COLS x LANES). */
const LANES = 256 / COLS;
/** Rows one workgroup covers in the workgroup layout (LANES lanes x ROWS rows each). */
const WG_ROWS = LANES * ROWS;

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

/** Bindings shared by both layouts: x, w, (r), y, params. */
function bindings(format: WeightFormat, epilogue: Epilogue): string {
  const res = epilogue === "residual";
  return /* wgsl */ `
@group(0) @binding(0) var<storage, read> x: array<vec4f>;
${weightDecl(format)}
${res ? "@group(0) @binding(2) var<storage, read> r: array<f32>;" : ""}
@group(0) @binding(${res ? 3 : 2}) var<storage, read_write> y: array<f32>;
struct P { rows: u32, inner: u32, cols: u32, accumulate: u32 }
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
 * Serial layout: one invocation per (group of `cols` columns, group of `rows` rows), with
 * rows x cols accumulators; each weight vec4 is read once per invocation, each x vec4 once per
 * row.
 */
function serialWgsl(format: WeightFormat, epilogue: Epilogue, rows: number, cols: number): string {
  const accs = Array.from({ length: rows }, (_, i) => i);
  const cs = Array.from({ length: cols }, (_, j) => j);
  return /* wgsl */ `
${bindings(format, epilogue)}
@compute @workgroup_size(${SERIAL_WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let n0 = gid.x * ${cols}u;
  let r0 = gid.y * ${rows}u;
  if (n0 >= p.cols) { return; }
  let K4 = p.inner / 4u;
  let last = p.rows - 1u;
  let lastCol = p.cols - 1u;
  // Rows past M (a ragged last group) re-read the last row, columns past N the last column;
  // their sums are never stored.
  ${accs.map((i) => `let xb${i} = min(r0 + ${i}u, last) * K4;`).join("\n  ")}
  ${cs.map((j) => `let wb${j} = min(n0 + ${j}u, lastCol) * K4;`).join("\n  ")}
  ${accs.flatMap((i) => cs.map((j) => `var a${i}_${j} = 0.0;`)).join(" ")}
  for (var q = 0u; q < K4; q++) {
    ${cs.map((j) => `let w${j} = loadW(wb${j} + q);`).join(" ")}
    ${
    accs.map((i) =>
      `{ let xv = x[xb${i} + q]; ${cs.map((j) => madd(`a${i}_${j}`, "xv", `w${j}`)).join(" ")} }`
    ).join("\n    ")
  }
  }
  ${
    accs.flatMap((i) =>
      cs.map((j) =>
        `if (r0 + ${i}u < p.rows && n0 + ${j}u < p.cols) ` +
        `{ finish((r0 + ${i}u) * p.cols + n0 + ${j}u, a${i}_${j}); }`
      )
    ).join("\n  ")
  }
}`;
}

/** Workgroup layout: COLS columns per workgroup, weight slices staged in workgroup memory. */
function workgroupWgsl(format: WeightFormat, epilogue: Epilogue): string {
  const S4 = SLICE / 4; // vec4s per column per slice
  const STRIDE = S4 + 1; // padded row of the staged tile (spreads columns over banks)
  const LOADS = (COLS * S4) / 256; // vec4 loads per thread per slice
  const accs = Array.from({ length: ROWS }, (_, i) => i);
  return /* wgsl */ `
${bindings(format, epilogue)}
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
    pre[j] = select(vec4f(0.0), loadW(min(c, p.cols - 1u) * K4 + min(q, K4 - 1u)),
                    c < p.cols && q < K4);
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
      pre[j] = select(vec4f(0.0), loadW(min(c, p.cols - 1u) * K4 + min(q, K4 - 1u)),
                      c < p.cols && q < K4);
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
  if (n < p.cols) {
    ${
    accs.map((i) => {
      const r = `r0 + ${i * LANES}u`;
      return `if (${r} < p.rows) { finish((${r}) * p.cols + n, a${i}); }`;
    }).join("\n    ")
  }
  }
}`;
}

/** Whether the few-row kernels can compute this shape on this device. */
export function rowsKernelFits(rec: Recorder, K: number): boolean {
  if (K % 4 !== 0 || K === 0) return false;
  // The serial layout's one loop runs K/4 times: keep it under llvmpipe's loop cap.
  return rec.gpu.info.kernels !== "serial" || K / 4 + 1 <= SERIAL_LOOP_BUDGET;
}

/**
 * Records y[M,N] (+)= x[M,K] · w[N,K]ᵀ with the few-row kernel of the device's style; with
 * `residual`, y = residual + x·wᵀ instead. K must be a multiple of 4 ({@link rowsKernelFits}).
 */
export function matmulRows(
  rec: Recorder,
  x: GPUBuffer,
  w: GPUBuffer,
  y: GPUBuffer,
  M: number,
  K: number,
  N: number,
  opts: { format?: WeightFormat; accumulate?: boolean; residual?: GPUBuffer } = {},
): void {
  if (!rowsKernelFits(rec, K)) {
    throw new Error(`matmulRows: K = ${K} must be a positive multiple of 4 (and fit the loop cap)`);
  }
  const format = opts.format ?? "f32";
  const epilogue: Epilogue = opts.residual ? "residual" : opts.accumulate ? "accumulate" : "store";
  const bufs = opts.residual ? [x, w, opts.residual, y] : [x, w, y];
  const params = [M, K, N, opts.accumulate ? 1 : 0];
  if (rec.gpu.info.kernels === "serial") {
    const rows = Math.min(M, ROWS);
    const cols = SERIAL_COLS;
    const k = kernel(
      rec.gpu,
      `matmulRows.serial.${format}.${epilogue}.${rows}`,
      serialWgsl(format, epilogue, rows, cols),
    );
    rec.dispatch(k, bufs, params, [cdiv(N, SERIAL_WG * cols), cdiv(M, rows), 1]);
  } else {
    const k = kernel(
      rec.gpu,
      `matmulRows.workgroup.${format}.${epilogue}`,
      workgroupWgsl(format, epilogue),
    );
    rec.dispatch(k, bufs, params, [cdiv(N, COLS), cdiv(M, WG_ROWS), 1]);
  }
}
