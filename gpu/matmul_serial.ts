/**
 * The matrix products of gpu/matmul.ts in the "serial" kernel style (CPU adapters, see
 * gpu/device.ts KernelStyle): the tiled kernel's bits without workgroup memory or barriers.
 *
 * C[R, C] (+)= Σ_k A(r, k) · B(k, c) with each operand stored k-contiguous or not, as in the
 * tiled kernel, so one template serves the forward (x · wᵀ), the input gradient (dy · w) and the
 * weight gradient (dyᵀ · x). One invocation owns {@link ROWS} rows x {@link COLS} columns of C
 * and walks k upwards, four at a time, loading each operand as vec4s along whichever of its axes
 * is contiguous (k, or its rows or columns; scalar loads where a vec4 would be misaligned), then
 * the tail k one by one. Every element is one accumulator that adds A·B in ascending k from +0:
 * the tiled kernel's order (its zero-padded tail adds +0, which changes nothing), so the bits are
 * the tiled kernel's (tests/gpu_matmul_serial_test.ts).
 *
 * Measured on lavapipe (2 cores), this runs the tiny world's and bench-model's training and
 * decode products 2-15x faster than the tiled kernel (bench-matmul-cpu): on a CPU the tiled
 * kernel's cost is its per-lane scalar loads and barriers, not arithmetic.
 *
 * @module
 */
import { type Binding, cdiv, kernel, type Recorder } from "./recorder.ts";
import { SERIAL_LOOP_BUDGET } from "./serial.ts";

/** Rows of C one invocation accumulates. */
export const ROWS = 8;
/** Columns of C one invocation accumulates. */
export const COLS = 4;
/** Invocations per workgroup: small, so that narrow products still spread over the cores. */
const WG = 16;

/** How the epilogue combines the product with C: store, accumulate (if asked), add a residual. */
export type Epilogue = "store" | "accumulate" | "residual";

/** The layout of one product. */
export interface SerialLayout {
  /** A stored [R, I] (else [I, R]). */
  aKContiguous: boolean;
  /** B stored [C, I] (else [I, C]). */
  bKContiguous: boolean;
  /** B holds packed BF16 words (either layout; vec2<u32> loads of 4 values where aligned). */
  bBf16: boolean;
  /** Whether each operand may be read as vec4s (alignment of its contiguous axis). */
  aVec: boolean;
  bVec: boolean;
  epilogue: Epilogue;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/**
 * WGSL expressions for operand values at one k (or 4 consecutive k) for the invocation's rows
 * (A) or columns (B). Returns declarations to emit once per k4 step and an accessor.
 */
function operandLoads(
  name: "a" | "b",
  kContig: boolean,
  vec: boolean,
  count: number,
  base: string,
  extent: string,
  bf16: boolean,
): { step: string; at: (i: number, j: number) => string; tail: (i: number) => string } {
  const arr = `${name}Flat`; // scalar view
  const v = `${name}Vec`; // vec4 view
  const scalarAt = (idx: string) => bf16 ? `bf16At(${idx})` : `${arr}[${idx}]`;
  // Four consecutive elements from a multiple of 4: one vec4 (f32) or vec2<u32> (BF16) load.
  const fourAt = (idx: string) => bf16 ? `widen4(${v}[${idx} / 4u])` : `${v}[${idx} / 4u]`;
  // Index of element (line i of the invocation, k) in the flat array, clamped to valid lines.
  const line = (i: number) => `min(${base} + ${i}u, ${extent} - 1u)`;
  if (kContig) {
    // [lines, I]: a vec4 of 4 consecutive k per line.
    const step = vec
      ? range(count).map((i) => `let ${name}${i} = ${fourAt(`(${line(i)} * p.inner + k)`)};`)
        .join(" ")
      : range(count).map((i) =>
        `let ${name}${i} = vec4f(${
          range(4).map((j) => scalarAt(`${line(i)} * p.inner + k + ${j}u`)).join(", ")
        });`
      ).join(" ");
    return {
      step,
      at: (i, j) => `${name}${i}[${j}]`,
      tail: (i) => scalarAt(`${line(i)} * p.inner + k`),
    };
  }
  // [I, lines]: at each k, a vec4 over 4 consecutive lines.
  const groups = count / 4;
  const step = range(4).map((j) =>
    range(groups).map((g) =>
      vec
        ? `let ${name}${j}_${g} = ${
          fourAt(`min((k + ${j}u) * ${extent} + ${base} + ${4 * g}u, arrayLength(&${v}) * 4u - 4u)`)
        };`
        : `let ${name}${j}_${g} = vec4f(${
          range(4).map((t) => scalarAt(`(k + ${j}u) * ${extent} + ${line(4 * g + t)}`)).join(", ")
        });`
    ).join(" ")
  ).join("\n    ");
  return {
    step,
    at: (i, j) => `${name}${j}_${Math.floor(i / 4)}[${i % 4}]`,
    tail: (i) => scalarAt(`k * ${extent} + ${line(i)}`),
  };
}

/** The storage bindings of a layout, in binding order (which operand each view is of). */
function serialBindings(
  l: SerialLayout,
): { name: string; type: string; of: "a" | "b" | "r" | "y"; rw?: boolean }[] {
  return [
    { name: "aFlat", type: "array<f32>", of: "a" as const },
    ...(l.aVec ? [{ name: "aVec", type: "array<vec4f>", of: "a" as const }] : []),
    { name: "bFlat", type: l.bBf16 ? "array<u32>" : "array<f32>", of: "b" as const },
    ...(l.bVec
      ? [{ name: "bVec", type: l.bBf16 ? "array<vec2<u32>>" : "array<vec4f>", of: "b" as const }]
      : []),
    ...(l.epilogue === "residual" ? [{ name: "r", type: "array<f32>", of: "r" as const }] : []),
    { name: "y", type: "array<f32>", of: "y" as const, rw: true },
  ];
}

function serialWgsl(l: SerialLayout): string {
  const A = operandLoads("a", l.aKContiguous, l.aVec, ROWS, "r0", "p.rows", false);
  const B = operandLoads("b", l.bKContiguous, l.bVec, COLS, "c0", "p.cols", l.bBf16);
  const acc = (i: number, c: number) => `c${i}_${c}`;
  const madd = (i: number, c: number, j: number) =>
    `${acc(i, c)} = ${acc(i, c)} + ${A.at(i, j)} * ${B.at(c, j)};`;
  const finish = l.epilogue === "residual"
    ? "v = r[o] + v;"
    : l.epilogue === "accumulate"
    ? "if (p.accumulate != 0u) { v = y[o] + v; }"
    : "";
  // Declared bindings in order (a shader must use all it declares); matmulSerial binds alike.
  const decls = serialBindings(l).map((b, i) =>
    `@group(0) @binding(${i}) var<storage, ${b.rw ? "read_write" : "read"}> ${b.name}: ${b.type};`
  );
  return /* wgsl */ `
${decls.join("\n")}
struct P { rows: u32, inner: u32, cols: u32, accumulate: u32, ldy: u32, col0: u32 }
@group(0) @binding(${decls.length}) var<uniform> p: P;
${
    l.bBf16
      ? `fn bf16At(i: u32) -> f32 {
  let word = bFlat[i >> 1u];
  return bitcast<f32>(select(word << 16u, word & 0xffff0000u, (i & 1u) == 1u));
}
fn widen4(w: vec2<u32>) -> vec4f {
  return vec4f(bitcast<f32>(w.x << 16u), bitcast<f32>(w.x & 0xffff0000u),
               bitcast<f32>(w.y << 16u), bitcast<f32>(w.y & 0xffff0000u));
}`
      : ""
  }
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c0 = gid.x * ${COLS}u;
  let r0 = gid.y * ${ROWS}u;
  if (c0 >= p.cols || r0 >= p.rows) { return; }
  ${
    range(ROWS).map((i) => range(COLS).map((c) => `var ${acc(i, c)} = 0.0;`).join(" ")).join("\n  ")
  }
  let k4 = p.inner & ~3u;
  for (var k = 0u; k < k4; k += 4u) {
    ${A.step}
    ${B.step}
    ${
    range(4).map((j) =>
      range(ROWS).map((i) => range(COLS).map((c) => madd(i, c, j)).join(" ")).join("\n    ")
    ).join("\n    ")
  }
  }
  for (var k = k4; k < p.inner; k++) {
    ${range(ROWS).map((i) => `let at${i} = ${A.tail(i)};`).join(" ")}
    ${range(COLS).map((c) => `let bt${c} = ${B.tail(c)};`).join(" ")}
    ${
    range(ROWS).map((i) =>
      range(COLS).map((c) => `${acc(i, c)} = ${acc(i, c)} + at${i} * bt${c};`).join(" ")
    ).join("\n    ")
  }
  }
  ${
    range(ROWS).map((i) =>
      range(COLS).map((c) =>
        `if (r0 + ${i}u < p.rows && c0 + ${c}u < p.cols) { let o = (r0 + ${i}u) * p.ldy + p.col0 + c0 + ${c}u; var v = ${
          acc(i, c)
        }; ${finish} y[o] = v; }`
      ).join("\n  ")
    ).join("\n  ")
  }
}`;
}

/** Whether the serial kernel may run an inner dimension of `inner` (llvmpipe's loop cap). */
export function serialMatmulFits(inner: number): boolean {
  return inner / 4 + 4 <= SERIAL_LOOP_BUDGET;
}

/**
 * Records C[rows, cols] (+)= A · B in the serial style (see the module doc); operands in the
 * tiled kernel's conventions. `bBf16`: B is packed BF16 (either layout). With `residual`,
 * C = residual + A·B.
 */
export function matmulSerial(
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
  opts: {
    accumulate?: boolean;
    residual?: GPUBuffer;
    bBf16?: boolean;
    /** Row stride and first column of this product's columns in y (default: all of y). */
    out?: { ldy: number; col0: number };
  } = {},
): void {
  const out = opts.out ?? { ldy: cols, col0: 0 };
  if (!serialMatmulFits(inner)) {
    throw new Error(`${name}: inner dimension ${inner} is past the serial kernel's loop budget`);
  }
  const bBf16 = opts.bBf16 ?? false;
  // A vec4 along an axis needs that axis's length to keep every row start 16-byte aligned.
  const layout: SerialLayout = {
    aKContiguous,
    bKContiguous,
    bBf16,
    aVec: (aKContiguous ? inner : rows) % 4 === 0,
    bVec: (bKContiguous ? inner : cols) % 4 === 0,
    epilogue: opts.residual ? "residual" : opts.accumulate ? "accumulate" : "store",
  };
  const key = `matmulSerial.${+aKContiguous}${+bKContiguous}${+bBf16}${+layout.aVec}` +
    `${+layout.bVec}.${layout.epilogue}`;
  const k = kernel(rec.gpu, key, serialWgsl(layout));
  const of: Record<string, Binding> = { a, b, r: opts.residual!, y };
  const bufs = serialBindings(layout).map((x) => of[x.of]);
  rec.dispatch(k, bufs, [rows, inner, cols, opts.accumulate ? 1 : 0, out.ldy, out.col0], [
    cdiv(cols, COLS * WG),
    cdiv(rows, ROWS),
    1,
  ]);
}
