import assert from "node:assert/strict";
import { getGpu } from "../gpu/device.ts";
import { rmsnorm, rmsnormBackward } from "../gpu/rmsnorm.ts";
import { assertClose, randn } from "./helpers.ts";
import { dot64, finiteDiff, run, up, zeros } from "./gpu_kernel_helpers.ts";

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
