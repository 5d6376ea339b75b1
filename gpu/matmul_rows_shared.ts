/**
 * Several few-row forwards that share their input in one dispatch: y_i[M,N_i] = x[M,K] · w_i[N_i,K]ᵀ
 * for two or three weights (a layer's q|k|v projections, its gate|up projections).
 *
 * The columns of all the weights are laid end to end and split into workgroups of
 * {@link COLS} exactly as gpu/matmul_rows.ts splits one weight's: each column is one accumulator
 * adding its products in ascending k from +0 with the same staging, so every element has the bits
 * of the separate products (tests/gpu_matmul_rows_shared_test.ts). What changes is the launch:
 * one dispatch instead of two or three, and at decode shapes one grid wide enough to fill a GPU
 * (Llama-3.2-3B's k and v projections alone have 64 workgroups of columns each). The weights stay
 * separate tensors: nothing in the model's layout, the checkpoints or the backward changes.
 *
 * @module
 */
import { COLS, rowsMainWgsl, type WeightFormat, WG_ROWS } from "./matmul_rows.ts";
import { cdiv, kernel, type Recorder } from "./recorder.ts";

/** One weight of a shared product and where its columns go. */
export interface SharedPart {
  /** The weight [N, K], f32 or packed BF16 (all parts have one format). */
  w: GPUBuffer;
  /** Output [M, N]. */
  y: GPUBuffer;
  N: number;
}

/** WGSL of the fused kernel over `parts` weights; column c belongs to part i when c < end_i. */
function sharedWgsl(parts: number, format: WeightFormat): string {
  const ids = Array.from({ length: parts }, (_, i) => i);
  const wType = format === "f32" ? "vec4f" : "vec2u";
  const widen = format === "f32"
    ? (v: string) => v
    : (v: string) =>
      `vec4f(bitcast<f32>(${v}.x << 16u), bitcast<f32>(${v}.x & 0xffff0000u), ` +
      `bitcast<f32>(${v}.y << 16u), bitcast<f32>(${v}.y & 0xffff0000u))`;
  // Part i's columns are [end_{i-1}, end_i); ends live in the params as e0, e1, e2.
  const end = (i: number) => `p.e${i}`;
  const start = (i: number) => (i === 0 ? "0u" : end(i - 1));
  const loadBranches = ids.map((i) =>
    `${i === parts - 1 ? "" : `if (c < ${end(i)}) `}{ return ${
      widen(`w${i}[(c - ${start(i)}) * K4 + q]`)
    }; }`
  ).join(" ");
  const storeBranches = ids.map((i) =>
    `${i === parts - 1 ? "" : `if (c < ${end(i)}) `}{ y${i}[row * (${end(i)} - ${start(i)}) + ` +
    `c - ${start(i)}] = v; return; }`
  ).join(" ");
  return /* wgsl */ `
@group(0) @binding(0) var<storage, read> x: array<vec4f>;
${
    ids.map((i) => `@group(0) @binding(${1 + i}) var<storage, read> w${i}: array<${wType}>;`).join(
      "\n",
    )
  }
${
    ids.map((i) =>
      `@group(0) @binding(${1 + parts + i}) var<storage, read_write> y${i}: array<f32>;`
    ).join("\n")
  }
struct P { rows: u32, inner: u32, e0: u32, e1: u32, e2: u32 }
@group(0) @binding(${1 + 2 * parts}) var<uniform> p: P;
fn loadW(c: u32, q: u32, K4: u32) -> vec4f { ${loadBranches} }
fn store(row: u32, c: u32, v: f32) { ${storeBranches} }
${
    rowsMainWgsl(
      "p.e2", // the last end: ends are padded to three
      (c, q) => `loadW(${c}, ${q}, K4)`,
      (row, col, acc) => `store(${row}, ${col}, ${acc});`,
    )
  }`;
}

/**
 * Records y_i = x · w_iᵀ (stored, not accumulated) for 2 or 3 weights of one format with the
 * few-row kernel's arithmetic, in one dispatch. K must be a positive multiple of 4; every weight
 * must fit one storage binding (the caller falls back to separate products otherwise).
 */
export function matmulRowsShared(
  rec: Recorder,
  x: GPUBuffer,
  parts: SharedPart[],
  M: number,
  K: number,
  format: WeightFormat = "f32",
): void {
  if (parts.length < 2 || parts.length > 3) {
    throw new Error(`matmulRowsShared: 2 or 3 weights, got ${parts.length}`);
  }
  if (!(K > 0 && K % 4 === 0)) {
    throw new Error(`matmulRowsShared: K = ${K} must be a positive multiple of 4`);
  }
  if (M === 0) return;
  const ends: number[] = [];
  for (const part of parts) ends.push((ends.at(-1) ?? 0) + part.N);
  while (ends.length < 3) ends.push(ends.at(-1)!);
  const k = kernel(
    rec.gpu,
    `matmulRowsShared${parts.length}.${format}`,
    sharedWgsl(parts.length, format),
  );
  rec.dispatch(k, [x, ...parts.map((p) => p.w), ...parts.map((p) => p.y)], [M, K, ...ends], [
    cdiv(ends[2], COLS),
    cdiv(M, WG_ROWS),
    1,
  ]);
}
