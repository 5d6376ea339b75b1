import assert from "node:assert/strict";
import { getGpu } from "../gpu/device.ts";
import { matmul, matmulGradInput, matmulGradWeight } from "../gpu/matmul.ts";
import { assertClose, randn } from "./helpers.ts";
import { dot64, finiteDiff, run, up, zeros } from "./gpu_kernel_helpers.ts";

/** f64 references. */
function refForward(x: Float32Array, w: Float32Array, M: number, K: number, N: number) {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[m * K + k] * w[n * K + k];
      y[m * N + n] = s;
    }
  }
  return y;
}
function refGradInput(dy: Float32Array, w: Float32Array, M: number, K: number, N: number) {
  const dx = new Float64Array(M * K);
  for (let m = 0; m < M; m++) {
    for (let k = 0; k < K; k++) {
      let s = 0;
      for (let n = 0; n < N; n++) s += dy[m * N + n] * w[n * K + k];
      dx[m * K + k] = s;
    }
  }
  return dx;
}
function refGradWeight(dy: Float32Array, x: Float32Array, M: number, K: number, N: number) {
  const dw = new Float64Array(N * K);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      let s = 0;
      for (let m = 0; m < M; m++) s += dy[m * N + n] * x[m * K + k];
      dw[n * K + k] = s;
    }
  }
  return dw;
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 5, 3],
  [3, 1, 7],
  [1, 70, 65],
  [64, 16, 64],
  [65, 17, 70],
  [130, 33, 129],
  [2, 1000, 300],
  [3, 3072, 70],
];

Deno.test("matmul, grad input and grad weight match an f64 reference on ragged shapes", async () => {
  const gpu = await getGpu();
  let seed = 1;
  for (const [M, K, N] of SHAPES) {
    const x = randn(M * K, seed++), w = randn(N * K, seed++), dy = randn(M * N, seed++);
    const y0 = randn(M * N, seed++), dx0 = randn(M * K, seed++), dw0 = randn(N * K, seed++);
    const gx = up(gpu, x), gw = up(gpu, w), gdy = up(gpu, dy);
    const gy = zeros(gpu, M * N), gdx = zeros(gpu, M * K), gdw = zeros(gpu, N * K);
    const gya = up(gpu, y0), gdxa = up(gpu, dx0), gdwa = up(gpu, dw0);
    const [y, dx, dw, ya, dxa, dwa] = await run(gpu, (rec) => {
      matmul(rec, gx, gw, gy, M, K, N);
      matmulGradInput(rec, gdy, gw, gdx, M, K, N);
      matmulGradWeight(rec, gdy, gx, gdw, M, K, N);
      matmul(rec, gx, gw, gya, M, K, N, true);
      matmulGradInput(rec, gdy, gw, gdxa, M, K, N, true);
      matmulGradWeight(rec, gdy, gx, gdwa, M, K, N, true);
    }, [[gy, M * N], [gdx, M * K], [gdw, N * K], [gya, M * N], [gdxa, M * K], [gdwa, N * K]]);
    const shape = `M=${M} K=${K} N=${N}`;
    // f32 rounding grows like sqrt(inner length); the inner length is K, N and M respectively.
    const tol = (inner: number) => 1e-4 * Math.max(1, Math.sqrt(inner) / 4);
    const ry = refForward(x, w, M, K, N);
    const rdx = refGradInput(dy, w, M, K, N);
    const rdw = refGradWeight(dy, x, M, K, N);
    assertClose(y, ry, tol(K), 1e-4, `matmul ${shape}`);
    assertClose(dx, rdx, tol(N), 1e-4, `matmulGradInput ${shape}`);
    assertClose(dw, rdw, tol(M), 1e-4, `matmulGradWeight ${shape}`);
    assertClose(ya, ry.map((v, i) => v + y0[i]), tol(K), 1e-4, `matmul accumulate ${shape}`);
    assertClose(dxa, rdx.map((v, i) => v + dx0[i]), tol(N), 1e-4, `gradInput accumulate ${shape}`);
    assertClose(dwa, rdw.map((v, i) => v + dw0[i]), tol(M), 1e-4, `gradWeight accumulate ${shape}`);
  }
});

Deno.test("matmul rows are bit-identical alone and inside a batch", async () => {
  const gpu = await getGpu();
  const M = 77, K = 45, N = 70;
  const x = randn(M * K, 11), w = randn(N * K, 12), dy = randn(M * N, 13);
  const gw = up(gpu, w);
  const gyAll = zeros(gpu, M * N), gdxAll = zeros(gpu, M * K);
  const [yAll, dxAll] = await run(gpu, (rec) => {
    matmul(rec, up(gpu, x), gw, gyAll, M, K, N);
    matmulGradInput(rec, up(gpu, dy), gw, gdxAll, M, K, N);
  }, [[gyAll, M * N], [gdxAll, M * K]]);
  for (const m of [0, 1, 63, 64, 76]) {
    const gy = zeros(gpu, N), gdx = zeros(gpu, K);
    const [y1, dx1] = await run(gpu, (rec) => {
      matmul(rec, up(gpu, x.slice(m * K, (m + 1) * K)), gw, gy, 1, K, N);
      matmulGradInput(rec, up(gpu, dy.slice(m * N, (m + 1) * N)), gw, gdx, 1, K, N);
    }, [[gy, N], [gdx, K]]);
    assert.deepEqual(Array.from(y1), Array.from(yAll.slice(m * N, (m + 1) * N)), `y row ${m}`);
    assert.deepEqual(Array.from(dx1), Array.from(dxAll.slice(m * K, (m + 1) * K)), `dx row ${m}`);
  }
  // A weight-gradient row (one output feature n) is also independent of the other features.
  const gdwAll = zeros(gpu, N * K);
  const [dwAll] = await run(gpu, (rec) => {
    matmulGradWeight(rec, up(gpu, dy), up(gpu, x), gdwAll, M, K, N);
  }, [[gdwAll, N * K]]);
  const n = 66;
  const dyCol = new Float32Array(M).map((_, m) => dy[m * N + n]);
  const gdw1 = zeros(gpu, K);
  const [dw1] = await run(gpu, (rec) => {
    matmulGradWeight(rec, up(gpu, dyCol), up(gpu, x), gdw1, M, K, 1);
  }, [[gdw1, K]]);
  assert.deepEqual(Array.from(dw1), Array.from(dwAll.slice(n * K, (n + 1) * K)));
});

Deno.test("matmul gradients agree with finite differences of sum(dy * y)", async () => {
  const gpu = await getGpu();
  const M = 5, K = 19, N = 9;
  const x = randn(M * K, 21), w = randn(N * K, 22), dy = randn(M * N, 23);
  const gdy = up(gpu, dy);
  const loss = async (xv: Float32Array, wv: Float32Array) => {
    const gy = zeros(gpu, M * N);
    const [y] = await run(gpu, (rec) => matmul(rec, up(gpu, xv), up(gpu, wv), gy, M, K, N), [[
      gy,
      M * N,
    ]]);
    return dot64(y, dy);
  };
  const gdx = zeros(gpu, M * K), gdw = zeros(gpu, N * K);
  const [dx, dw] = await run(gpu, (rec) => {
    matmulGradInput(rec, gdy, up(gpu, w), gdx, M, K, N);
    matmulGradWeight(rec, gdy, up(gpu, x), gdw, M, K, N);
  }, [[gdx, M * K], [gdw, N * K]]);
  const xi = [0, 7, 40, M * K - 1], wi = [0, 13, 100, N * K - 1];
  const fdx = await finiteDiff(x, xi, 1e-2, (xv) => loss(xv, w));
  const fdw = await finiteDiff(w, wi, 1e-2, (wv) => loss(x, wv));
  assertClose(xi.map((i) => dx[i]), fdx, 2e-3, 1e-3, "dx vs finite differences");
  assertClose(wi.map((i) => dw[i]), fdw, 2e-3, 1e-3, "dw vs finite differences");
});
