/**
 * The input gradient dx = dy · W with W in packed BF16 (the compute copy of a model trained with
 * precision "bf16") gives, on every path that can run it (the 64x64 tiled kernel, the 128x128
 * kernel, the serial kernel, and the dispatcher in both kernel styles), the very bits of the f32
 * product on the widened weights: only W's load differs.
 */
import assert from "node:assert/strict";
import { getGpu } from "../gpu/device.ts";
import { matmulGradInput, matmulGradInputTiled } from "../gpu/matmul.ts";
import { matmulBig } from "../gpu/matmul_big.ts";
import { matmulSerial } from "../gpu/matmul_serial.ts";
import { packBf16 } from "../gpu/bf16.ts";
import { bf16ToF32, f32ToBf16 } from "../lib/model/safetensors/dtype.ts";
import { randn } from "./helpers.ts";
import { assertSameBits, inBothStyles, run, up, zeros } from "./gpu_kernel_helpers.ts";

/** Random BF16 weights: packed words and the same values widened to f32. */
function bf16Weights(n: number, seed: number) {
  const bits = f32ToBf16(randn(n, seed));
  return { packed: packBf16(bits), widened: bf16ToF32(bits) };
}

// [M, K, N] of dx[M,K] = dy[M,N] · W[N,K]: ones, odd sizes (odd K puts rows of W mid-word),
// multiples of 4, and shapes of at least 128 rows and columns (the large tile).
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [3, 5, 7],
  [9, 33, 65],
  [17, 64, 103],
  [130, 129, 33],
  [128, 128, 16],
  [257, 131, 96],
];

Deno.test("packed-BF16 grad input equals the f32 product on the widened weights, every kernel", async () => {
  const gpu = await getGpu();
  let seed = 900;
  for (const [M, K, N] of SHAPES) {
    const dy = randn(M * N, seed++), dx0 = randn(M * K, seed++);
    const w = bf16Weights(N * K, seed++);
    const gdy = up(gpu, dy), gw = up(gpu, w.widened), gwb = up(gpu, w.packed);
    const big = M >= 128 && K >= 128;
    const outs = Array.from({ length: 8 }, (_, i) => i % 2 ? up(gpu, dx0) : zeros(gpu, M * K));
    const got = await run(gpu, (rec) => {
      matmulGradInputTiled(rec, gdy, gw, outs[0], M, K, N);
      matmulGradInputTiled(rec, gdy, gw, outs[1], M, K, N, true);
      matmulGradInputTiled(rec, gdy, gwb, outs[2], M, K, N, false, "bf16");
      matmulGradInputTiled(rec, gdy, gwb, outs[3], M, K, N, true, "bf16");
      matmulSerial(rec, "gib", true, false, gdy, gwb, outs[4], M, N, K, { bBf16: true });
      matmulSerial(rec, "giba", true, false, gdy, gwb, outs[5], M, N, K, {
        bBf16: true,
        accumulate: true,
      });
      if (big) {
        matmulBig(rec, "gib", true, false, gdy, gwb, outs[6], M, N, K, false, true);
        matmulBig(rec, "giba", true, false, gdy, gwb, outs[7], M, N, K, true, true);
      }
    }, outs.map((b) => [b, M * K] as [GPUBuffer, number]));
    const at = `M=${M} K=${K} N=${N}`;
    const names: [string, string] = ["packed BF16 W", "f32 widened W"];
    assertSameBits(got[2], got[0], `tiled ${at}`, names);
    assertSameBits(got[3], got[1], `tiled accumulate ${at}`, names);
    assertSameBits(got[4], got[0], `serial ${at}`, names);
    assertSameBits(got[5], got[1], `serial accumulate ${at}`, names);
    if (big) {
      assertSameBits(got[6], got[0], `128x128 ${at}`, names);
      assertSameBits(got[7], got[1], `128x128 accumulate ${at}`, names);
    }
  }
});

Deno.test("matmulGradInput with packed BF16 W gives the f32 bits in both kernel styles", async () => {
  const gpu = await getGpu();
  // The small shape takes the 64x64 kernel on GPUs, the large one the 128x128 kernel.
  for (const [M, K, N] of [[70, 36, 45], [192, 160, 40]]) {
    const dy = randn(M * N, M), w = bf16Weights(N * K, K);
    const got = await inBothStyles(gpu, (g) => {
      const outs = [zeros(g, M * K), zeros(g, M * K)];
      const gdy = up(g, dy);
      return run(g, (rec) => {
        matmulGradInput(rec, gdy, up(g, w.widened), outs[0], M, K, N);
        matmulGradInput(rec, gdy, up(g, w.packed), outs[1], M, K, N, false, "bf16");
      }, outs.map((b) => [b, M * K] as [GPUBuffer, number]));
    });
    const at = `M=${M} K=${K} N=${N}`;
    assertSameBits(got.workgroup[1], got.workgroup[0], `workgroup style ${at}`);
    assertSameBits(got.serial[1], got.serial[0], `serial style ${at}`);
    assertSameBits(got.serial[1], got.workgroup[1], `styles agree ${at}`);
  }
});

Deno.test("matmulGradInput refuses a packed weight buffer too small for [N, K]", async () => {
  const gpu = await getGpu();
  await assert.rejects(
    run(
      gpu,
      (rec) =>
        matmulGradInput(rec, zeros(gpu, 2), zeros(gpu, 4), zeros(gpu, 64), 1, 64, 2, false, "bf16"),
      [],
    ),
    /matmulGradInput: w holds 16 bytes, \[2, 64\] packed BF16 needs 256/,
  );
});
