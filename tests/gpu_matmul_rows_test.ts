/**
 * The few-row forward kernel (gpu/matmul_rows.ts) gives the tiled kernel's bits: every shape,
 * f32 and packed BF16 weights, every epilogue; and through the dispatchers in both kernel styles
 * the rows of a product at M = 1 and 32 (decode) equal the same rows at M = 3200 (training).
 */
import { getGpu } from "../gpu/device.ts";
import { FEW_ROWS, matmul, matmulBf16W, matmulResidual, matmulTiled } from "../gpu/matmul.ts";
import { matmulRows } from "../gpu/matmul_rows.ts";
import { randn } from "./helpers.ts";
import { assertSameBits, bf16Of, inBothStyles, run, up, zeros } from "./gpu_kernel_helpers.ts";

const GT: [string, string] = ["few-row kernel", "tiled kernel"];
const SMALL: [string, string] = ["few rows", "M = 3200"];

const SHAPES: [number, number, number][] = [
  [1, 4, 1],
  [1, 64, 70],
  [2, 8, 5],
  [3, 176, 64],
  [8, 64, 103],
  [9, 1000, 33],
  [17, 128, 130],
  [32, 3072, 40],
];

Deno.test("the few-row kernel equals the tiled kernel bit for bit (BF16, epilogues)", async () => {
  const gpu = await getGpu();
  let seed = 100;
  for (const [M, K, N] of SHAPES) {
    const x = randn(M * K, seed++), w = randn(N * K, seed++), r = randn(M * N, seed++);
    const gx = up(gpu, x), gw = up(gpu, w), gr = up(gpu, r), gwb = await bf16Of(gpu, w);
    for (const format of ["f32", "bf16"] as const) {
      const wt = format === "f32" ? gw : gwb;
      // The reference: the tiled kernel, stored, accumulated onto r, and r + product.
      const ref0 = zeros(gpu, M * N), ref1 = up(gpu, r);
      const [want, wantAcc] = await run(gpu, (rec) => {
        matmulTiled(rec, gx, wt, ref0, M, K, N, false, format);
        matmulTiled(rec, gx, wt, ref1, M, K, N, true, format);
      }, [[ref0, M * N], [ref1, M * N]]);
      const y0 = zeros(gpu, M * N), y1 = up(gpu, r), y2 = zeros(gpu, M * N);
      const [y, ya, yr] = await run(gpu, (rec) => {
        matmulRows(rec, gx, wt, y0, M, K, N, { format });
        matmulRows(rec, gx, wt, y1, M, K, N, { format, accumulate: true });
        matmulRows(rec, gx, wt, y2, M, K, N, { format, residual: gr });
      }, [[y0, M * N], [y1, M * N], [y2, M * N]]);
      const at = `${format} M=${M} K=${K} N=${N}`;
      assertSameBits(y, want, `store ${at}`, GT);
      assertSameBits(ya, wantAcc, `accumulate ${at}`, GT);
      assertSameBits(yr, wantAcc, `residual ${at}`, GT);
    }
  }
});

Deno.test("rows at M = 1 and 32 equal the same rows at M = 3200 (K = 3072), both styles", async () => {
  const gpu = await getGpu();
  const M = 3200, K = 3072, N = 24;
  const x = randn(M * K, 7), w = randn(N * K, 8, 0.02);
  const gx = up(gpu, x), gw = up(gpu, w), gwb = await bf16Of(gpu, w);
  const big = zeros(gpu, M * N), bigB = zeros(gpu, M * N);
  // The reference: the tiled kernel (the engine's only kernel before the few-row and serial ones).
  const [yBig, yBigB] = await run(gpu, (rec) => {
    matmulTiled(rec, gx, gw, big, M, K, N);
    matmulTiled(rec, gx, gwb, bigB, M, K, N, false, "bf16");
  }, [[big, M * N], [bigB, M * N]]);
  for (const m of [1, 32]) {
    const got = await inBothStyles(gpu, (g) => {
      const y = zeros(g, m * N), yb = zeros(g, m * N), again = zeros(g, M * N);
      return run(g, (rec) => {
        matmul(rec, gx, gw, y, m, K, N);
        matmulBf16W(rec, gx, gwb, yb, m, K, N);
        matmul(rec, gx, gw, again, M, K, N);
      }, [[y, m * N], [yb, m * N], [again, M * N]]);
    });
    for (const style of ["serial", "workgroup"] as const) {
      const [y, yb, again] = got[style];
      assertSameBits(y, yBig.subarray(0, m * N), `${style} f32 M=${m} vs M=${M}`, SMALL);
      assertSameBits(yb, yBigB.subarray(0, m * N), `${style} bf16 M=${m} vs M=${M}`, SMALL);
      assertSameBits(again, yBig, `${style} M=${M}`, ["dispatcher", "tiled kernel"]);
    }
  }
});

Deno.test("matmulResidual equals copy + accumulate above the few-row range too", async () => {
  const gpu = await getGpu();
  const M = FEW_ROWS + 9, K = 36, N = 20;
  const x = randn(M * K, 31), w = randn(N * K, 32), r = randn(M * N, 33);
  const gx = up(gpu, x), gw = up(gpu, w), gr = up(gpu, r);
  const want = up(gpu, r), got = zeros(gpu, M * N);
  const [a, b] = await run(gpu, (rec) => {
    matmulTiled(rec, gx, gw, want, M, K, N, true);
    matmulResidual(rec, gx, gw, gr, got, M, K, N);
  }, [[want, M * N], [got, M * N]]);
  assertSameBits(b, a, "residual above FEW_ROWS", ["matmulResidual", "copy + accumulate"]);
});
