/**
 * The serial attention kernels (one invocation per row, for CPU adapters) must give the same bits
 * as the workgroup kernels: forward (prefill and decode rows) and backward.
 */
import assert from "node:assert/strict";
import { getGpu } from "../gpu/device.ts";
import { createBuffer, readF32, uploadBuffer } from "../gpu/buffers.ts";
import { Recorder } from "../gpu/recorder.ts";
import { attention, attentionBackward, serialLoops } from "../gpu/attention.ts";
import { SERIAL_LOOP_BUDGET } from "../gpu/serial.ts";
import { randn } from "./helpers.ts";
import { assertSameBits, inBothStyles } from "./gpu_kernel_helpers.ts";

const SHAPES = [
  { B: 3, S: 150, nHeads: 4, nKv: 2, hd: 16 },
  { B: 2, S: 70, nHeads: 6, nKv: 2, hd: 40 },
];

for (const { B, S, nHeads, nKv, hd } of SHAPES) {
  Deno.test(`serial attention forward and backward give the workgroup kernels' bits (B=${B}, S=${S}, hd=${hd})`, async () => {
    const gpu = await getGpu();
    for (const kind of ["forward", "dkv", "dq"] as const) {
      const loops = serialLoops(kind, S, hd, nHeads / nKv);
      assert.ok(loops <= SERIAL_LOOP_BUDGET, `${kind} would fall back to the workgroup kernel`);
    }
    const M = B * S, scale = 1 / Math.sqrt(hd);
    const q = uploadBuffer(gpu, randn(M * nHeads * hd, 1), "q");
    const kc = uploadBuffer(gpu, randn(M * nKv * hd, 2), "kc");
    const vc = uploadBuffer(gpu, randn(M * nKv * hd, 3), "vc");
    const dout = uploadBuffer(gpu, randn(M * nHeads * hd, 4), "dout");
    const seq = new Uint32Array(M), pos = new Uint32Array(M);
    for (let m = 0; m < M; m++) [seq[m], pos[m]] = [Math.floor(m / S), m % S];
    // Decode-style rows: one row per sequence at scattered positions.
    const dSeq = new Uint32Array([0, B - 1, 1, 0]), dPos = new Uint32Array([S - 1, 63, 64, 0]);
    const bits = await inBothStyles(gpu, async () => {
      const out = createBuffer(gpu, M * nHeads * hd * 4, "out");
      const lse = createBuffer(gpu, M * nHeads * 4, "lse");
      const dOut = createBuffer(gpu, 4 * nHeads * hd * 4, "decode out");
      const dLse = createBuffer(gpu, 4 * nHeads * 4, "decode lse");
      const dq = createBuffer(gpu, M * nHeads * hd * 4, "dq");
      const dk = createBuffer(gpu, M * nKv * hd * 4, "dk");
      const dv = createBuffer(gpu, M * nKv * hd * 4, "dv");
      const dQ = uploadBuffer(gpu, randn(4 * nHeads * hd, 5), "decode q");
      const rec = new Recorder(gpu);
      const sb = uploadBuffer(gpu, seq, "seq"), pb = uploadBuffer(gpu, pos, "pos");
      attention(rec, q, kc, vc, sb, pb, out, lse, M, nHeads, nKv, hd, S, scale);
      const dsb = uploadBuffer(gpu, dSeq, "dseq"), dpb = uploadBuffer(gpu, dPos, "dpos");
      attention(rec, dQ, kc, vc, dsb, dpb, dOut, dLse, 4, nHeads, nKv, hd, S, scale);
      attentionBackward(rec, q, kc, vc, out, lse, dout, dq, dk, dv, B, S, nHeads, nKv, hd, scale);
      await rec.submit();
      return await Promise.all(
        [out, lse, dOut, dLse, dq, dk, dv].map((b) => readF32(gpu, b)),
      );
    });
    const names = ["out", "lse", "decode out", "decode lse", "dq", "dk", "dv"];
    names.forEach((name, i) => {
      assert.ok(bits.workgroup[i].some((x) => x !== 0), `${name}: all zero`);
      assertSameBits(bits.workgroup[i], bits.serial[i], name);
    });
  });
}

Deno.test("llvmpipe's loop cap is why long serial rows fall back: a nest past the budget would be wrong", () => {
  // S=3000, hd=128: the serial forward would loop far past 65,535 times in one invocation.
  assert.ok(serialLoops("forward", 3000, 128, 1) > 65_535);
  assert.ok(serialLoops("forward", 256, 16, 1) < SERIAL_LOOP_BUDGET);
});
