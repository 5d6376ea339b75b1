import assert from "node:assert/strict";
import { getGpu } from "../gpu/device.ts";
import { matmul, matmulBf16W } from "../gpu/matmul.ts";
import { embedding, embeddingBf16 } from "../gpu/embedding.ts";
import { packBf16, packBf16Gpu, packedBf16Bytes, unpackBf16 } from "../gpu/bf16.ts";
import { createBuffer } from "../gpu/buffers.ts";
import { bf16ToF32, f32ToBf16 } from "../lib/model/safetensors/dtype.ts";
import { assertClose, randn } from "./helpers.ts";
import { randInts, run, up, zeros } from "./gpu_kernel_helpers.ts";

/** Random BF16 weights: their bit patterns and the same values widened to f32. */
function bf16Weights(n: number, seed: number) {
  const bits = f32ToBf16(randn(n, seed));
  return { packed: packBf16(bits), widened: bf16ToF32(bits) };
}

/** Bitwise equality of two f32 arrays (NaN payloads included), naming the first mismatch. */
function assertSameBits(a: Float32Array, b: Float32Array, what: string) {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  assert.equal(ua.length, ub.length, `${what}: length`);
  for (let i = 0; i < ua.length; i++) {
    if (ua[i] !== ub[i]) assert.fail(`${what}[${i}]: ${a[i]} vs ${b[i]} (bits differ)`);
  }
}

Deno.test("packBf16/unpackBf16 round trip, odd counts included", () => {
  for (const n of [1, 2, 7, 64]) {
    const bits = f32ToBf16(randn(n, n));
    const packed = packBf16(bits);
    assert.equal(packed.length, Math.ceil(n / 2));
    assertSameBits(unpackBf16(packed, n), bf16ToF32(bits), `n=${n}`);
  }
  assert.throws(() => unpackBf16(new Uint32Array(1), 3), /3 values need 2 words/);
});

Deno.test("matmulBf16W is bit-identical to matmul on the widened weights (ragged shapes)", async () => {
  const gpu = await getGpu();
  let seed = 900;
  // Odd K: rows straddle words; odd N*K: the last word is half used; 65+ rows/cols: several tiles.
  for (
    const [M, K, N] of [[1, 1, 1], [3, 5, 7], [1, 33, 130], [70, 17, 65], [5, 64, 3], [2, 3, 129]]
  ) {
    const x = randn(M * K, seed++);
    const w = bf16Weights(N * K, seed++);
    const y0 = randn(M * N, seed++);
    const yF = zeros(gpu, M * N), yB = zeros(gpu, M * N);
    const aF = up(gpu, y0), aB = up(gpu, y0);
    const gx = up(gpu, x);
    const [rF, rB, raF, raB] = await run(gpu, (rec) => {
      matmul(rec, gx, up(gpu, w.widened), yF, M, K, N);
      matmulBf16W(rec, gx, up(gpu, w.packed), yB, M, K, N);
      matmul(rec, gx, up(gpu, w.widened), aF, M, K, N, true);
      matmulBf16W(rec, gx, up(gpu, w.packed), aB, M, K, N, true);
    }, [[yF, M * N], [yB, M * N], [aF, M * N], [aB, M * N]]);
    const where = `M=${M} K=${K} N=${N}`;
    assertSameBits(rB, rF, `overwrite ${where}`);
    assertSameBits(raB, raF, `accumulate ${where}`);
    // And both are the product (so equal bits cannot mean equally wrong).
    const ref = new Float32Array(M * N);
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += x[m * K + k] * w.widened[n * K + k];
        ref[m * N + n] = s;
      }
    }
    assertClose(rB, ref, 1e-4, 1e-4, `reference ${where}`);
  }
});

Deno.test("matmulBf16W refuses a weight buffer too small for [N, K] BF16", async () => {
  const gpu = await getGpu();
  await assert.rejects(
    run(
      gpu,
      (rec) => matmulBf16W(rec, zeros(gpu, 64), zeros(gpu, 4), zeros(gpu, 64), 1, 64, 2),
      [],
    ),
    /matmulBf16W: w holds 16 bytes, \[2, 64\] packed BF16 needs 256/,
  );
});

Deno.test("embeddingBf16 gathers the widened rows bit for bit; an outside token gives NaN", async () => {
  const gpu = await getGpu();
  let seed = 950;
  for (const [T, V, D] of [[1, 1, 2], [5, 3, 7], [40, 11, 300], [3, 1000, 3]]) {
    const w = bf16Weights(V * D, seed++);
    const tokens = randInts(T, V, seed++);
    const yF = zeros(gpu, T * D), yB = zeros(gpu, T * D);
    const gt = up(gpu, tokens);
    const [rF, rB] = await run(gpu, (rec) => {
      embedding(rec, gt, up(gpu, w.widened), yF, T, D);
      embeddingBf16(rec, gt, up(gpu, w.packed), yB, T, D);
    }, [[yF, T * D], [yB, T * D]]);
    assertSameBits(rB, rF, `T=${T} V=${V} D=${D}`);
    const ref = new Float32Array(T * D);
    tokens.forEach((v, t) => ref.set(w.widened.subarray(v * D, (v + 1) * D), t * D));
    assertSameBits(rB, ref, `reference T=${T} V=${V} D=${D}`);
  }
  // V*D = 3*8 = 24 values fill 48 bytes exactly (no padding row), so token 3 is outside.
  const w = bf16Weights(24, 7);
  const y = zeros(gpu, 2 * 8);
  const [r] = await run(gpu, (rec) => {
    embeddingBf16(rec, up(gpu, new Uint32Array([2, 3])), up(gpu, w.packed), y, 2, 8);
  }, [[y, 16]]);
  assertSameBits(r.subarray(0, 8), w.widened.subarray(16, 24), "row 2");
  assert.ok(r.subarray(8).every((v) => Number.isNaN(v)), "token 3 is outside: NaN row");
});

Deno.test("packBf16Gpu rounds to nearest even exactly like f32ToBf16 (ties, NaN, inf, odd n)", async () => {
  const gpu = await getGpu();
  const special = new Uint32Array([
    0x3f808000, // tie, even below: stays 0x3f80
    0x3f818000, // tie, odd below: rounds up to 0x3f82
    0x3f808001, // just above a tie: up
    0x7f7fffff, // max finite: rounds to inf
    0x7f800000, // inf
    0xff800001, // signalling NaN: quiet NaN
    0x00000001, // smallest subnormal: 0
    0x80000000, // -0
  ]);
  for (const n of [1, 8, 9, 1001]) {
    const x = randn(n, n, 3);
    x.set(new Float32Array(special.buffer).subarray(0, Math.min(n, special.length)));
    const out = createBuffer(gpu, packedBf16Bytes(n), "packed");
    const [r] = await run(gpu, (rec) => packBf16Gpu(rec, up(gpu, x), out, n), [[
      out,
      Math.ceil(n / 2),
    ]]);
    assert.deepEqual(
      Array.from(new Uint32Array(r.buffer)),
      Array.from(packBf16(f32ToBf16(x))),
      `n=${n}`,
    );
  }
});
