import assert from "node:assert/strict";
import { getGpu } from "../gpu/device.ts";
import { createBuffer, readF32, uploadBuffer } from "../gpu/buffers.ts";
import { Recorder } from "../gpu/recorder.ts";
import { rope, ropeBackward, ropeInvFreq } from "../gpu/rope.ts";
import { assertClose, randn } from "./helpers.ts";

/** HF transformers `_compute_llama3_parameters`, transcribed array-wise in f64. */
function hfLlama3InvFreq(
  dim: number,
  base: number,
  scaling?: { factor: number; low: number; high: number; old: number },
): number[] {
  const invFreq: number[] = [];
  for (let k = 0; k < dim; k += 2) invFreq.push(1.0 / base ** (k / dim));
  if (!scaling) return invFreq;
  const { factor, low, high, old } = scaling;
  const lowFreqWavelen = old / low;
  const highFreqWavelen = old / high;
  const wavelen = invFreq.map((f) => 2 * Math.PI / f);
  let llama = invFreq.map((f, i) => wavelen[i] > lowFreqWavelen ? f / factor : f);
  const smoothFactor = wavelen.map((w) => (old / w - low) / (high - low));
  const smoothed = llama.map((f, i) => (1 - smoothFactor[i]) * f / factor + smoothFactor[i] * f);
  const isMedium = wavelen.map((w) => !(w < highFreqWavelen) && !(w > lowFreqWavelen));
  llama = llama.map((f, i) => isMedium[i] ? smoothed[i] : f);
  return llama;
}

Deno.test("ropeInvFreq matches the HF llama3 formula, scaled and unscaled", () => {
  for (const hd of [8, 64, 128]) {
    const plain = ropeInvFreq(hd, 500000);
    assert.deepEqual(Array.from(plain), hfLlama3InvFreq(hd, 500000).map(Math.fround));
    const scaled = ropeInvFreq(hd, 500000, {
      factor: 32,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositionEmbeddings: 8192,
    });
    const want = hfLlama3InvFreq(hd, 500000, { factor: 32, low: 1, high: 4, old: 8192 });
    assert.deepEqual(Array.from(scaled), want.map(Math.fround));
  }
  // At head_dim 128 all three bands occur: kept, interpolated, divided by the factor.
  const plain = ropeInvFreq(128, 500000);
  const scaled = ropeInvFreq(128, 500000, {
    factor: 32,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositionEmbeddings: 8192,
  });
  assert.equal(scaled[0], 1);
  assert.equal(scaled[63], Math.fround(plain[63] / 32));
  const kinds = new Set<string>();
  for (let i = 0; i < 64; i++) {
    const r = scaled[i] / plain[i];
    kinds.add(r === 1 ? "kept" : Math.abs(r - 1 / 32) < 1e-6 ? "divided" : "smoothed");
  }
  assert.deepEqual([...kinds].sort(), ["divided", "kept", "smoothed"]);
  assert.throws(() => ropeInvFreq(7, 10000), /even/);
});

/** f64 reference of the documented formula (angle rounded to f32 as the kernel does). */
function ropeRef(
  x: Float32Array,
  pos: Uint32Array,
  inv: Float32Array,
  M: number,
  H: number,
  hd: number,
  sign: number,
): Float64Array {
  const half = hd / 2, y = new Float64Array(x.length);
  for (let m = 0; m < M; m++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < half; i++) {
        const a = Math.fround(Math.fround(pos[m]) * inv[i]);
        const c = Math.cos(a), s = sign * Math.sin(a);
        const b = (m * H + h) * hd;
        y[b + i] = x[b + i] * c - x[b + i + half] * s;
        y[b + i + half] = x[b + i + half] * c + x[b + i] * s;
      }
    }
  }
  return y;
}

async function runRope(
  x: Float32Array,
  pos: Uint32Array,
  inv: Float32Array,
  M: number,
  H: number,
  hd: number,
  backward = false,
  inPlace = false,
): Promise<Float32Array> {
  const gpu = await getGpu();
  const gx = uploadBuffer(gpu, x, "x");
  const gy = inPlace ? gx : createBuffer(gpu, x.byteLength, "y");
  const gp = uploadBuffer(gpu, pos, "pos"), gi = uploadBuffer(gpu, inv, "inv");
  const rec = new Recorder(gpu);
  (backward ? ropeBackward : rope)(rec, gx, gy, gp, gi, M, H, hd);
  await rec.submit();
  return readF32(gpu, gy, x.length);
}

const SCALING = {
  factor: 32,
  lowFreqFactor: 1,
  highFreqFactor: 4,
  originalMaxPositionEmbeddings: 8192,
};

Deno.test("rope and ropeBackward match the f64 reference; in place is bit-identical", async () => {
  const cases = [
    { M: 1, H: 1, hd: 8, pos: [0], scaled: false },
    { M: 5, H: 3, hd: 8, pos: [0, 1, 2, 1000, 8191], scaled: false },
    { M: 4, H: 7, hd: 12, pos: [3, 0, 77, 4095], scaled: true },
    { M: 3, H: 2, hd: 128, pos: [0, 5000, 131071], scaled: true },
  ];
  for (const c of cases) {
    const n = c.M * c.H * c.hd;
    const x = randn(n, 7 + n);
    const pos = new Uint32Array(c.pos);
    const inv = ropeInvFreq(c.hd, 500000, c.scaled ? SCALING : undefined);
    for (const backward of [false, true]) {
      const y = await runRope(x, pos, inv, c.M, c.H, c.hd, backward);
      const want = ropeRef(x, pos, inv, c.M, c.H, c.hd, backward ? -1 : 1);
      assertClose(y, want, 3e-5, 1e-4, `rope${backward ? "Backward" : ""} hd=${c.hd}`);
      const yIn = await runRope(x, pos, inv, c.M, c.H, c.hd, backward, true);
      assert.deepEqual(yIn, y, "in place differs from out of place");
    }
    // Position 0 is the identity.
    const y = await runRope(x, pos, inv, c.M, c.H, c.hd);
    for (let m = 0; m < c.M; m++) {
      if (pos[m] !== 0) continue;
      const r = m * c.H * c.hd;
      assert.deepEqual(y.slice(r, r + c.H * c.hd), x.slice(r, r + c.H * c.hd));
    }
  }
});

Deno.test("ropeBackward is the transpose: finite differences and inverse", async () => {
  const M = 3, H = 2, hd = 16, n = M * H * hd;
  const x = randn(n, 11), w = randn(n, 12);
  const pos = new Uint32Array([0, 9, 300]);
  const inv = ropeInvFreq(hd, 10000);
  // Scalar loss L = sum(w * rope(x)); dL/dx = ropeBackward(w).
  const grad = await runRope(w, pos, inv, M, H, hd, true);
  const loss = async (xs: Float32Array) => {
    const y = await runRope(xs, pos, inv, M, H, hd);
    let s = 0;
    for (let i = 0; i < n; i++) s += w[i] * y[i];
    return s;
  };
  const eps = 1e-2;
  for (const i of [0, 7, 8, 40, 95]) {
    const xp = x.slice(), xm = x.slice();
    xp[i] += eps;
    xm[i] -= eps;
    const fd = (await loss(xp) - await loss(xm)) / (2 * eps);
    assert.ok(Math.abs(fd - grad[i]) < 2e-3, `fd[${i}] ${fd} vs grad ${grad[i]}`);
  }
  const back = await runRope(await runRope(x, pos, inv, M, H, hd), pos, inv, M, H, hd, true);
  assertClose(back, x, 1e-5, 1e-5, "ropeBackward(rope(x))");
});

Deno.test("rope of a row alone equals the same row inside a batch", async () => {
  const H = 3, hd = 64, M = 6, n = M * H * hd;
  const x = randn(n, 21);
  const pos = new Uint32Array([4, 0, 17, 2047, 1, 4]);
  const inv = ropeInvFreq(hd, 500000, SCALING);
  const all = await runRope(x, pos, inv, M, H, hd);
  for (const m of [0, 3, 5]) {
    const row = x.slice(m * H * hd, (m + 1) * H * hd);
    const alone = await runRope(row, new Uint32Array([pos[m]]), inv, 1, H, hd);
    assert.deepEqual(alone, all.slice(m * H * hd, (m + 1) * H * hd));
  }
});
