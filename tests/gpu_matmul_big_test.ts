/**
 * The large-tile GPU kernel (gpu/matmul_big.ts) gives the 64x64 tiled kernel's bits for all three
 * products (ragged edges, vec4 and scalar loads, BF16 weights, accumulation, an output window),
 * and the dispatchers that choose it agree with the tiled kernel.
 */
import type { Gpu } from "../gpu/device.ts";
import { getGpu } from "../gpu/device.ts";
import {
  matmul,
  matmulGradInput,
  matmulGradInputTiled,
  matmulGradWeight,
  matmulGradWeightTiled,
  matmulTiled,
} from "../gpu/matmul.ts";
import { matmulBig } from "../gpu/matmul_big.ts";
import { randn } from "./helpers.ts";
import { assertSameBits, bf16Of, run, up, zeros } from "./gpu_kernel_helpers.ts";

const NAMES: [string, string] = ["128x128 kernel", "64x64 kernel"];

/** Runs body with the device's kernel style set to "workgroup" (the GPU paths), then restores. */
async function asGpu<T>(gpu: Gpu, body: () => Promise<T>): Promise<T> {
  const own = gpu.info.kernels;
  gpu.info.kernels = "workgroup";
  try {
    return await body();
  } finally {
    gpu.info.kernels = own;
  }
}

Deno.test("the 128x128 kernel equals the 64x64 kernel for all three products", async () => {
  const gpu = await getGpu();
  let seed = 500;
  for (const [M, K, N] of [[128, 16, 128], [130, 33, 129], [256, 64, 200], [257, 96, 131]]) {
    const x = randn(M * K, seed++), w = randn(N * K, seed++), dy = randn(M * N, seed++);
    const y0 = randn(M * N, seed++), dw0 = randn(N * K, seed++);
    const gx = up(gpu, x), gw = up(gpu, w), gdy = up(gpu, dy), gwb = await bf16Of(gpu, w);
    const sizes = [M * N, M * N, M * K, N * K, M * N];
    const ref = [
      zeros(gpu, M * N),
      zeros(gpu, M * N),
      zeros(gpu, M * K),
      up(gpu, dw0),
      up(gpu, y0),
    ];
    const big = [
      zeros(gpu, M * N),
      zeros(gpu, M * N),
      zeros(gpu, M * K),
      up(gpu, dw0),
      up(gpu, y0),
    ];
    const got = await asGpu(gpu, () =>
      run(gpu, (rec) => {
        matmulTiled(rec, gx, gw, ref[0], M, K, N);
        matmulTiled(rec, gx, gwb, ref[1], M, K, N, false, "bf16");
        matmulGradInputTiled(rec, gdy, gw, ref[2], M, K, N);
        matmulGradWeightTiled(rec, gdy, gx, ref[3], M, K, N, true);
        matmulTiled(rec, gx, gw, ref[4], M, K, N, true);
        matmulBig(rec, "f", true, true, gx, gw, big[0], M, K, N, false);
        matmulBig(rec, "fb", true, true, gx, gwb, big[1], M, K, N, false, true);
        matmulBig(rec, "gi", true, false, gdy, gw, big[2], M, N, K, false);
        matmulBig(rec, "gw", false, false, gdy, gx, big[3], N, M, K, true);
        matmulBig(rec, "fa", true, true, gx, gw, big[4], M, K, N, true);
      }, [...ref, ...big].map((b, i) => [b, sizes[i % 5]] as [GPUBuffer, number])));
    const what = ["forward", "forward BF16", "grad input", "grad weight +=", "forward +="];
    for (let i = 0; i < 5; i++) {
      assertSameBits(got[5 + i], got[i], `${what[i]} M=${M} K=${K} N=${N}`, NAMES);
    }
  }
});

Deno.test("on the GPU path the dispatchers' big products equal the 64x64 kernel", async () => {
  const gpu = await getGpu();
  const [M, K, N] = [192, 40, 160];
  const x = randn(M * K, 1), w = randn(N * K, 2), dy = randn(M * N, 3);
  const gx = up(gpu, x), gw = up(gpu, w), gdy = up(gpu, dy);
  const bufs = [zeros(gpu, M * N), zeros(gpu, M * K), zeros(gpu, N * K)];
  const refs = [zeros(gpu, M * N), zeros(gpu, M * K), zeros(gpu, N * K)];
  const sizes = [M * N, M * K, N * K];
  const got = await asGpu(gpu, () =>
    run(gpu, (rec) => {
      matmul(rec, gx, gw, bufs[0], M, K, N);
      matmulGradInput(rec, gdy, gw, bufs[1], M, K, N);
      matmulGradWeight(rec, gdy, gx, bufs[2], M, K, N);
      matmulTiled(rec, gx, gw, refs[0], M, K, N);
      matmulGradInputTiled(rec, gdy, gw, refs[1], M, K, N);
      matmulGradWeightTiled(rec, gdy, gx, refs[2], M, K, N);
    }, [...bufs, ...refs].map((b, i) => [b, sizes[i % 3]] as [GPUBuffer, number])));
  ["forward", "grad input", "grad weight"].forEach((what, i) =>
    assertSameBits(got[i], got[3 + i], what, ["dispatcher", "64x64 kernel"])
  );
});
