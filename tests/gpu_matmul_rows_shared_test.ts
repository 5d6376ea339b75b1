/**
 * The shared-input few-row kernel (gpu/matmul_rows_shared.ts) gives each of its products the bits
 * of the separate few-row and tiled products: 2 and 3 weights, f32 and packed BF16, column
 * counts that are and are not multiples of a workgroup's columns (so workgroups straddle parts).
 */
import { getGpu } from "../gpu/device.ts";
import { matmulTiled } from "../gpu/matmul.ts";
import { matmulRowsShared } from "../gpu/matmul_rows_shared.ts";
import { Recorder } from "../gpu/recorder.ts";
import { randn } from "./helpers.ts";
import { assertSameBits, bf16Of, run, up, zeros } from "./gpu_kernel_helpers.ts";
import assert from "node:assert/strict";

/** [M, K, N per part]. */
const CASES: [number, number, number[]][] = [
  [1, 64, [48, 16, 16]], // q|k|v-like, whole workgroups of columns
  [3, 36, [20, 7, 9]], // parts straddle workgroups
  [5, 128, [40, 40]], // gate|up-like
  [32, 72, [33, 1]],
  [9, 260, [16, 5, 30]], // several K slices, a partial last one
];

Deno.test("shared-input few-row products equal the separate products bit for bit", async () => {
  const gpu = await getGpu();
  let seed = 500;
  for (const [M, K, Ns] of CASES) {
    const x = up(gpu, randn(M * K, seed++));
    const ws = Ns.map((N) => randn(N * K, seed++));
    for (const format of ["f32", "bf16"] as const) {
      const wb = await Promise.all(ws.map((w) => format === "f32" ? up(gpu, w) : bf16Of(gpu, w)));
      const ref = Ns.map((N) => zeros(gpu, M * N));
      const want = await run(gpu, (rec) => {
        Ns.forEach((N, i) => matmulTiled(rec, x, wb[i], ref[i], M, K, N, false, format));
      }, Ns.map((N, i) => [ref[i], M * N] as [GPUBuffer, number]));
      // Outputs start as garbage: the kernel stores, it does not accumulate.
      const ys = Ns.map((N, i) => up(gpu, randn(M * N, 900 + i)));
      const got = await run(gpu, (rec) => {
        matmulRowsShared(rec, x, Ns.map((N, i) => ({ w: wb[i], y: ys[i], N })), M, K, format);
      }, Ns.map((N, i) => [ys[i], M * N] as [GPUBuffer, number]));
      Ns.forEach((_, i) => {
        const at = `${format} M=${M} K=${K} part ${i} of [${Ns}]`;
        assertSameBits(got[i], want[i], at, ["shared kernel", "tiled kernel"]);
      });
    }
  }
});

Deno.test("matmulRowsShared refuses what it cannot compute", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  const b = zeros(gpu, 64);
  assert.throws(() => matmulRowsShared(rec, b, [{ w: b, y: b, N: 4 }], 1, 8), /2 or 3 weights/);
  assert.throws(
    () => matmulRowsShared(rec, b, [{ w: b, y: b, N: 4 }, { w: b, y: b, N: 4 }], 1, 6),
    /multiple of 4/,
  );
});
