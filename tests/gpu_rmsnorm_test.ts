import assert from "node:assert/strict";
import { getGpu } from "../gpu/device.ts";
import {
  rmsnorm,
  RMSNORM_DW_CHUNK_ROWS,
  rmsnormBackward,
  rmsnormDwChunks,
} from "../gpu/rmsnorm.ts";
import { kernel } from "../gpu/recorder.ts";
import { SERIAL_LOOP_BUDGET } from "../gpu/serial.ts";
import { assertClose, randn } from "./helpers.ts";
import { assertSameBits, dot64, finiteDiff, run, up, zeros } from "./gpu_kernel_helpers.ts";

const EPS = 1e-5;

/** f64 reference forward and backward. */
function reference(x: Float32Array, w: Float32Array, dy: Float32Array, M: number, D: number) {
  const y = new Float64Array(M * D), rstd = new Float64Array(M);
  const dx = new Float64Array(M * D), dw = new Float64Array(D);
  for (let m = 0; m < M; m++) {
    const o = m * D;
    let ss = 0;
    for (let d = 0; d < D; d++) ss += x[o + d] ** 2;
    const r = 1 / Math.sqrt(ss / D + EPS);
    rstd[m] = r;
    let s = 0;
    for (let d = 0; d < D; d++) {
      y[o + d] = w[d] * x[o + d] * r;
      s += dy[o + d] * w[d] * x[o + d];
      dw[d] += dy[o + d] * x[o + d] * r;
    }
    for (let d = 0; d < D; d++) dx[o + d] = r * dy[o + d] * w[d] - (r ** 3) * x[o + d] * s / D;
  }
  return { y, rstd, dx, dw };
}

async function gpuAll(
  x: Float32Array,
  w: Float32Array,
  dy: Float32Array,
  M: number,
  D: number,
  dx0?: Float32Array,
  dw0?: Float32Array,
) {
  const gpu = await getGpu();
  const gx = up(gpu, x), gw = up(gpu, w);
  const y = zeros(gpu, M * D), rstd = zeros(gpu, M);
  const dx = dx0 ? up(gpu, dx0) : zeros(gpu, M * D), dw = dw0 ? up(gpu, dw0) : zeros(gpu, D);
  const [a, b, c, d] = await run(gpu, (rec) => {
    rmsnorm(rec, gx, gw, y, rstd, M, D, EPS);
    rmsnormBackward(rec, up(gpu, dy), gx, gw, rstd, dx, dw, M, D, dx0 !== undefined);
  }, [[y, M * D], [rstd, M], [dx, M * D], [dw, D]]);
  return { y: a, rstd: b, dx: c, dw: d };
}

Deno.test("rmsnorm forward and backward match an f64 reference", async () => {
  let seed = 200;
  for (const [M, D] of [[1, 1], [1, 7], [3, 256], [5, 300], [2, 1000]]) {
    const x = randn(M * D, seed++), w = randn(D, seed++), dy = randn(M * D, seed++);
    const r = reference(x, w, dy, M, D);
    const s = `M=${M} D=${D}`;
    const g = await gpuAll(x, w, dy, M, D);
    assertClose(g.y, r.y, 1e-5, 1e-4, `y ${s}`);
    assertClose(g.rstd, r.rstd, 1e-6, 1e-5, `rstd ${s}`);
    assertClose(g.dx, r.dx, 1e-5, 1e-4, `dx ${s}`);
    assertClose(g.dw, r.dw, 1e-5, 1e-4, `dw ${s}`);
    // Accumulating variants add onto what is there.
    const dx0 = randn(M * D, seed++), dw0 = randn(D, seed++);
    const ga = await gpuAll(x, w, dy, M, D, dx0, dw0);
    assertClose(ga.dx, r.dx.map((v, i) => v + dx0[i]), 1e-5, 1e-4, `dx accumulate ${s}`);
    assertClose(ga.dw, r.dw.map((v, i) => v + dw0[i]), 1e-5, 1e-4, `dw accumulate ${s}`);
  }
});

Deno.test("rmsnorm rows are bit-identical alone and inside a batch", async () => {
  const M = 5, D = 333;
  const x = randn(M * D, 51), w = randn(D, 52), dy = randn(M * D, 53);
  const all = await gpuAll(x, w, dy, M, D);
  for (const m of [0, 2, 4]) {
    const sl = (a: Float32Array) => a.slice(m * D, (m + 1) * D);
    const one = await gpuAll(sl(x), w, sl(dy), 1, D);
    assert.deepEqual(Array.from(one.y), Array.from(sl(all.y)));
    assert.equal(one.rstd[0], all.rstd[m]);
    assert.deepEqual(Array.from(one.dx), Array.from(sl(all.dx)));
  }
});

Deno.test("rmsnorm gradients agree with finite differences of sum(dy * y)", async () => {
  const M = 3, D = 20;
  const x = randn(M * D, 61), w = randn(D, 62), dy = randn(M * D, 63);
  const g = await gpuAll(x, w, dy, M, D);
  const loss = async (xv: Float32Array, wv: Float32Array) =>
    dot64((await gpuAll(xv, wv, dy, M, D)).y, dy);
  const xi = [0, 9, 25, M * D - 1], wi = [0, 7, D - 1];
  const fdx = await finiteDiff(x, xi, 1e-2, (xv) => loss(xv, w));
  const fdw = await finiteDiff(w, wi, 1e-2, (wv) => loss(x, wv));
  assertClose(xi.map((i) => g.dx[i]), fdx, 2e-3, 1e-2, "dx vs finite differences");
  assertClose(wi.map((i) => g.dw[i]), fdw, 2e-3, 1e-2, "dw vs finite differences");
});

// The single-stage weight gradient this file's two-stage one replaced: one thread per feature
// sums every row in ascending order. Kept here as the bit reference for M <= R.
const SINGLE_STAGE_DW_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> rstd: array<f32>;
@group(0) @binding(3) var<storage, read_write> dw: array<f32>;
struct P { M: u32, D: u32 }
@group(0) @binding(4) var<uniform> p: P;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) t: u32) {
  let d = (wid.x + wid.y * nwg.x) * 64u + t;
  if (d >= p.D) { return; }
  var s = 0.0;
  for (var m = 0u; m < p.M; m++) { s += dy[m * p.D + d] * (x[m * p.D + d] * rstd[m]); }
  dw[d] = dw[d] + s;
}`;

/** dw from rmsnormBackward and from the single-stage kernel, on the same dy, x, rstd, dw0. */
async function dwBothWays(
  dy: Float32Array,
  x: Float32Array,
  rstdHost: Float32Array,
  dw0: Float32Array,
  M: number,
  D: number,
) {
  const gpu = await getGpu();
  const gdy = up(gpu, dy), gx = up(gpu, x), rstd = up(gpu, rstdHost), w = up(gpu, dw0);
  const dwNew = up(gpu, dw0), dwOld = up(gpu, dw0), dx = zeros(gpu, M * D);
  const [fresh, old] = await run(gpu, (rec) => {
    rmsnormBackward(rec, gdy, gx, w, rstd, dx, dwNew, M, D);
    const k = kernel(gpu, "rmsnormBackwardDwSingleStage", SINGLE_STAGE_DW_WGSL);
    rec.dispatch(k, [gdy, gx, rstd, dwOld], [M, D], Math.ceil(D / 64));
  }, [[dwNew, D], [dwOld, D]]);
  return { fresh, old };
}

/** The two-stage order in f32: each chunk summed from 0 in ascending rows, then chunk order. */
function dwChunkedF32(
  dy: Float32Array,
  x: Float32Array,
  rstd: Float32Array,
  dw0: Float32Array,
  M: number,
  D: number,
): Float32Array {
  const R = RMSNORM_DW_CHUNK_ROWS, f = Math.fround;
  const out = new Float32Array(D);
  for (let d = 0; d < D; d++) {
    let total = 0;
    for (let c = 0; c * R < M; c++) {
      let s = 0;
      for (let m = c * R; m < Math.min(M, (c + 1) * R); m++) {
        s = f(s + f(dy[m * D + d] * f(x[m * D + d] * rstd[m])));
      }
      total = c === 0 ? s : f(total + s);
    }
    out[d] = f(dw0[d] + total);
  }
  return out;
}

Deno.test("rmsnorm dW: one chunk of rows reproduces the single-stage kernel bit for bit", async () => {
  const R = RMSNORM_DW_CHUNK_ROWS, D = 5;
  let seed = 700;
  for (const M of [1, 37, R - 1, R]) {
    const dy = randn(M * D, seed++), x = randn(M * D, seed++), dw0 = randn(D, seed++);
    const rstd = randn(M, seed++).map((v) => Math.abs(v) + 0.5);
    const { fresh, old } = await dwBothWays(dy, x, rstd, dw0, M, D);
    assertSameBits(fresh, old, `dw M=${M}`);
  }
});

Deno.test("rmsnorm dW over several chunks matches the f64 reference and the chunked f32 order", async () => {
  const R = RMSNORM_DW_CHUNK_ROWS, D = 3;
  assert.ok(R + 1 <= SERIAL_LOOP_BUDGET, "a chunk's loop fits a CPU adapter's loop budget");
  let seed = 800;
  for (const M of [R - 3, R, R + 1, 3 * R + 5]) {
    assert.equal(rmsnormDwChunks(M), Math.ceil(M / R));
    const dy = randn(M * D, seed++), x = randn(M * D, seed++), dw0 = randn(D, seed++);
    const rstd = randn(M, seed++).map((v) => Math.abs(v) + 0.5);
    const { fresh } = await dwBothWays(dy, x, rstd, dw0, M, D);
    const ref = new Float64Array(D);
    for (let d = 0; d < D; d++) {
      ref[d] = dw0[d];
      for (let m = 0; m < M; m++) ref[d] += dy[m * D + d] * x[m * D + d] * rstd[m];
    }
    assertClose(fresh, ref, 1e-3, 1e-4, `dw M=${M} vs f64`);
    assertSameBits(fresh, dwChunkedF32(dy, x, rstd, dw0, M, D), `dw M=${M} vs chunked f32`);
  }
});
