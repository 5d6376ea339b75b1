/**
 * The serial matmul (gpu/matmul_serial.ts, CPU adapters) gives the tiled kernel's bits for all
 * three products: ragged shapes, vec4 and scalar load paths (dimensions that are and are not
 * multiples of 4), packed BF16 weights, and every epilogue; and the engine's dispatchers give the
 * same bits in both kernel styles.
 */
import { getGpu } from "../gpu/device.ts";
import {
  matmul,
  matmulGradInput,
  matmulGradInputTiled,
  matmulGradWeight,
  matmulGradWeightTiled,
  matmulTiled,
} from "../gpu/matmul.ts";
import { matmulSerial } from "../gpu/matmul_serial.ts";
import { randn } from "./helpers.ts";
import { assertSameBits, bf16Of, inBothStyles, run, up, zeros } from "./gpu_kernel_helpers.ts";

const NAMES: [string, string] = ["serial kernel", "tiled kernel"];

// [M, K, N]: 1s, odd sizes (scalar loads), multiples of 4 (vec4 loads), past one 8x4 block.
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 4, 3],
  [3, 5, 7],
  [8, 64, 176],
  [9, 70, 65],
  [17, 64, 103],
  [33, 176, 64],
  [64, 103, 64],
  [130, 33, 129],
];

Deno.test("serial matmul equals the tiled kernel for all three products, bit for bit", async () => {
  const gpu = await getGpu();
  let seed = 300;
  for (const [M, K, N] of SHAPES) {
    const x = randn(M * K, seed++), w = randn(N * K, seed++), dy = randn(M * N, seed++);
    const y0 = randn(M * N, seed++), dx0 = randn(M * K, seed++), dw0 = randn(N * K, seed++);
    const gx = up(gpu, x), gw = up(gpu, w), gdy = up(gpu, dy), gwb = await bf16Of(gpu, w);
    const gy0 = up(gpu, y0);
    const outs = [
      zeros(gpu, M * N), // forward
      up(gpu, y0), // forward, accumulate
      zeros(gpu, M * N), // forward BF16
      up(gpu, dx0), // input gradient, accumulate
      up(gpu, dw0), // weight gradient, accumulate
    ];
    const mine = [zeros(gpu, M * N), up(gpu, y0), zeros(gpu, M * N), up(gpu, dx0), up(gpu, dw0)];
    const residual = zeros(gpu, M * N);
    const sizes = [M * N, M * N, M * N, M * K, N * K];
    const got = await run(gpu, (rec) => {
      matmulTiled(rec, gx, gw, outs[0], M, K, N);
      matmulTiled(rec, gx, gw, outs[1], M, K, N, true);
      matmulTiled(rec, gx, gwb, outs[2], M, K, N, false, "bf16");
      matmulGradInputTiled(rec, gdy, gw, outs[3], M, K, N, true);
      matmulGradWeightTiled(rec, gdy, gx, outs[4], M, K, N, true);
      matmulSerial(rec, "f", true, true, gx, gw, mine[0], M, K, N);
      matmulSerial(rec, "fa", true, true, gx, gw, mine[1], M, K, N, { accumulate: true });
      matmulSerial(rec, "fb", true, true, gx, gwb, mine[2], M, K, N, { bBf16: true });
      matmulSerial(rec, "gi", true, false, gdy, gw, mine[3], M, N, K, { accumulate: true });
      matmulSerial(rec, "gw", false, false, gdy, gx, mine[4], N, M, K, { accumulate: true });
      matmulSerial(rec, "fr", true, true, gx, gw, residual, M, K, N, { residual: gy0 });
    }, [
      ...outs.map((b, i) => [b, sizes[i]] as [GPUBuffer, number]),
      ...mine.map((b, i) => [b, sizes[i]] as [GPUBuffer, number]),
      [residual, M * N],
    ]);
    const what = ["forward", "forward accumulate", "forward BF16", "grad input", "grad weight"];
    for (let i = 0; i < 5; i++) {
      assertSameBits(got[5 + i], got[i], `${what[i]} M=${M} K=${K} N=${N}`, NAMES);
    }
    assertSameBits(got[10], got[1], `forward residual M=${M} K=${K} N=${N}`, NAMES);
  }
});

Deno.test("the matmul dispatchers give the same bits in both kernel styles", async () => {
  const gpu = await getGpu();
  const [M, K, N] = [70, 36, 45];
  const x = randn(M * K, 1), w = randn(N * K, 2), dy = randn(M * N, 3);
  const got = await inBothStyles(gpu, (g) => {
    const y = zeros(g, M * N), dx = zeros(g, M * K), dw = zeros(g, N * K);
    const gw = up(g, w);
    return run(g, (rec) => {
      matmul(rec, up(g, x), gw, y, M, K, N);
      matmulGradInput(rec, up(g, dy), gw, dx, M, K, N);
      matmulGradWeight(rec, up(g, dy), up(g, x), dw, M, K, N);
    }, [[y, M * N], [dx, M * K], [dw, N * K]]);
  });
  ["forward", "grad input", "grad weight"].forEach((what, i) =>
    assertSameBits(got.workgroup[i], got.serial[i], what)
  );
});
