/**
 * The query-blocked attention forward (gpu/attention_blocked.ts) must give the bits of the
 * per-(row, head) workgroup kernel it replaces, for prefill/training rows and decode rows, and
 * match the f64 reference.
 */
import assert from "node:assert/strict";
import { getGpu, type Gpu } from "../gpu/device.ts";
import { createBuffer, readF32, uploadBuffer } from "../gpu/buffers.ts";
import { Recorder } from "../gpu/recorder.ts";
import {
  attention,
  attentionBackward,
  attentionDelta,
  type AttentionVariant,
} from "../gpu/attention.ts";
import {
  attentionBackwardBlocked,
  backwardBlockBytes,
  type BackwardPlan,
  planBackwardBlocked,
} from "../gpu/attention_backward_blocked.ts";
import { attentionBlocked, DECODE_MAX_ROWS, planBlocked } from "../gpu/attention_blocked.ts";
import { assertClose, randn } from "./helpers.ts";
import { assertSameBits } from "./gpu_kernel_helpers.ts";

interface Case {
  B: number;
  S: number;
  nHeads: number;
  nKv: number;
  hd: number;
}

/** Forward of rows (seq, pos) over caches [B, S, nKv, hd] in the workgroup style. */
async function forward(
  gpu: Gpu,
  c: Case,
  bufs: { q: GPUBuffer; kc: GPUBuffer; vc: GPUBuffer },
  seq: Uint32Array,
  pos: Uint32Array,
  variant: AttentionVariant,
): Promise<[Float32Array, Float32Array]> {
  const M = seq.length;
  const out = createBuffer(gpu, M * c.nHeads * c.hd * 4, "out");
  const lse = createBuffer(gpu, M * c.nHeads * 4, "lse");
  const own = gpu.info.kernels;
  gpu.info.kernels = "workgroup";
  try {
    const rec = new Recorder(gpu);
    const sb = uploadBuffer(gpu, seq, "seq"), pb = uploadBuffer(gpu, pos, "pos");
    const { nHeads, nKv, hd, S } = c;
    attention(rec, bufs.q, bufs.kc, bufs.vc, sb, pb, out, lse, M, nHeads, nKv, hd, S, 0.3, variant);
    await rec.submit();
  } finally {
    gpu.info.kernels = own;
  }
  return [await readF32(gpu, out), await readF32(gpu, lse)];
}

/** f64 reference for row m (sequence sq, last visible key `last`), head h. */
function refRow(
  c: Case,
  q: Float32Array,
  kc: Float32Array,
  vc: Float32Array,
  m: number,
  sq: number,
  last: number,
  h: number,
): { out: number[]; lse: number } {
  const { S, nHeads, nKv, hd } = c;
  const g = Math.floor(h / (nHeads / nKv));
  const s: number[] = [];
  for (let j = 0; j <= last; j++) {
    let dot = 0;
    for (let d = 0; d < hd; d++) {
      dot += q[(m * nHeads + h) * hd + d] * kc[((sq * S + j) * nKv + g) * hd + d];
    }
    s.push(dot * 0.3);
  }
  const mx = Math.max(...s), e = s.map((x) => Math.exp(x - mx)), z = e.reduce((a, b) => a + b);
  const out = new Array(hd).fill(0);
  for (let j = 0; j <= last; j++) {
    for (let d = 0; d < hd; d++) out[d] += e[j] / z * vc[((sq * S + j) * nKv + g) * hd + d];
  }
  return { out, lse: mx + Math.log(z) };
}

// Several 64-key tiles, head dims that are and are not multiples of 64 (and of the staging
// width), kv groups of 1, 3 and 4 heads, several sequences.
const CASES: Case[] = [
  { B: 2, S: 150, nHeads: 3, nKv: 3, hd: 40 },
  { B: 3, S: 130, nHeads: 6, nKv: 2, hd: 72 },
  { B: 2, S: 140, nHeads: 8, nKv: 2, hd: 128 },
  { B: 2, S: 70, nHeads: 4, nKv: 1, hd: 12 },
  { B: 2, S: 80, nHeads: 2, nKv: 1, hd: 256 },
];

for (const c of CASES) {
  const { B, S, nHeads, nKv, hd } = c;
  Deno.test(`blocked attention forward gives the per-(row, head) kernel's bits (B=${B}, S=${S}, heads ${nHeads}/${nKv}, hd=${hd})`, async () => {
    const gpu = await getGpu();
    const M = B * S;
    const qh = randn(M * nHeads * hd, 11), kh = randn(M * nKv * hd, 12, 1.5);
    const vh = randn(M * nKv * hd, 13);
    const bufs = {
      q: uploadBuffer(gpu, qh, "q"),
      kc: uploadBuffer(gpu, kh, "kc"),
      vc: uploadBuffer(gpu, vh, "vc"),
    };
    assert.ok(planBlocked(gpu, M, nHeads / nKv, hd), "the blocked kernel must apply here");
    // Training/prefill layout: every position of every sequence, consecutive rows.
    const seq = Uint32Array.from({ length: M }, (_, m) => Math.floor(m / S));
    const pos = Uint32Array.from({ length: M }, (_, m) => m % S);
    const [oNew, lNew] = await forward(gpu, c, bufs, seq, pos, "auto");
    const [oOld, lOld] = await forward(gpu, c, bufs, seq, pos, "rowwise");
    assert.ok(oNew.some((x) => x !== 0));
    assertSameBits(oNew, oOld, "out", ["blocked", "rowwise"]);
    assertSameBits(lNew, lOld, "lse", ["blocked", "rowwise"]);
    for (const m of [0, 63, 64, S - 1, M - 1]) {
      for (const h of [0, nHeads - 1]) {
        const r = refRow(c, qh, kh, vh, m, seq[m], pos[m], h);
        const at = (m * nHeads + h) * hd;
        assertClose(oNew.slice(at, at + hd), r.out, 2e-5, 1e-4, `out row ${m} head ${h}`);
        assertClose(lNew.slice(m * nHeads + h, m * nHeads + h + 1), [r.lse], 2e-5, 1e-5, "lse");
      }
    }
    // Packed rows of different sequences in one block, out of order.
    const mix = [S - 1, S, 5, 2 * S - 1, 64, 0, S + Math.min(70, S - 1), (B - 1) * S + 65];
    const mSeq = Uint32Array.from(mix, (m) => seq[m]), mPos = Uint32Array.from(mix, (m) => pos[m]);
    const mq = new Float32Array(mix.length * nHeads * hd);
    const r = nHeads * hd;
    mix.forEach((m, i) => mq.set(qh.slice(m * r, (m + 1) * r), i * r));
    const mixed = { ...bufs, q: uploadBuffer(gpu, mq, "mixed q") };
    // Decode layout (M <= DECODE_MAX_ROWS): one row per block, one block per (row, kv head).
    assert.ok(mix.length <= DECODE_MAX_ROWS);
    const [dOut, dLse] = await forward(gpu, c, mixed, mSeq, mPos, "auto");
    // The same rows padded past the decode size, so they run in multi-row blocks.
    const pad = Math.max(0, DECODE_MAX_ROWS + 1 - mix.length);
    const big = (a: Uint32Array, x: number) => Uint32Array.from([...a, ...new Array(pad).fill(x)]);
    const bq = new Float32Array((mix.length + pad) * r);
    bq.set(mq);
    const padded = { ...bufs, q: uploadBuffer(gpu, bq, "padded q") };
    const [pOut, pLse] = await forward(gpu, c, padded, big(mSeq, 0), big(mPos, 3), "auto");
    mix.forEach((m, i) => {
      const want = oOld.slice(m * r, (m + 1) * r);
      assertSameBits(dOut.slice(i * r, (i + 1) * r), want, `decode row ${i}`, [
        "decode",
        "prefill",
      ]);
      assertSameBits(pOut.slice(i * r, (i + 1) * r), want, `packed row ${i}`, [
        "packed",
        "prefill",
      ]);
      const wl = lOld.slice(m * nHeads, (m + 1) * nHeads);
      assertSameBits(dLse.slice(i * nHeads, (i + 1) * nHeads), wl, `decode lse ${i}`);
      assertSameBits(pLse.slice(i * nHeads, (i + 1) * nHeads), wl, `packed lse ${i}`);
    });
  });
}

Deno.test("blocked attention: the narrow staging slice and odd block shapes give the same bits", async () => {
  const gpu = await getGpu();
  const c = { B: 2, S: 90, nHeads: 6, nKv: 2, hd: 72 };
  const M = c.B * c.S;
  const bufs = {
    q: uploadBuffer(gpu, randn(M * c.nHeads * c.hd, 21), "q"),
    kc: uploadBuffer(gpu, randn(M * c.nKv * c.hd, 22), "kc"),
    vc: uploadBuffer(gpu, randn(M * c.nKv * c.hd, 23), "vc"),
  };
  const seq = Uint32Array.from({ length: M }, (_, m) => Math.floor(m / c.S));
  const pos = Uint32Array.from({ length: M }, (_, m) => m % c.S);
  const [oOld, lOld] = await forward(gpu, c, bufs, seq, pos, "rowwise");
  // R = 5 rows (blocks straddle the two sequences), one head per block, 16-wide slices.
  for (const plan of [{ R: 5, HS: 1, CH: 16, UT: 1 }, { R: 1, HS: 3, CH: 16, UT: 3 }]) {
    const out = createBuffer(gpu, oOld.byteLength, "out"),
      lse = createBuffer(gpu, lOld.byteLength, "lse");
    const rec = new Recorder(gpu);
    const sb = uploadBuffer(gpu, seq, "seq"), pb = uploadBuffer(gpu, pos, "pos");
    attentionBlocked(
      rec,
      { ...plan, bytes: 0 },
      [bufs.q, bufs.kc, bufs.vc, sb, pb, out, lse],
      M,
      c.nHeads,
      c.nKv,
      c.hd,
      c.S,
      0.3,
    );
    await rec.submit();
    const what = JSON.stringify(plan);
    assertSameBits(await readF32(gpu, out), oOld, `out ${what}`, ["blocked", "rowwise"]);
    assertSameBits(await readF32(gpu, lse), lOld, `lse ${what}`, ["blocked", "rowwise"]);
  }
});

Deno.test("blocked attention plans fit WebGPU's guaranteed 16 KiB of workgroup memory", () => {
  const small = {
    device: {
      limits: { maxComputeWorkgroupStorageSize: 16384, maxComputeInvocationsPerWorkgroup: 256 },
    },
  } as unknown as Gpu;
  for (const hd of [8, 64, 72, 128, 256]) {
    for (const group of [1, 2, 3, 4, 6, 8, 16]) {
      for (const M of [1, DECODE_MAX_ROWS, 512]) {
        const plan = planBlocked(small, M, group, hd);
        assert.ok(plan, `hd ${hd}, group ${group}, M ${M}: no plan`);
        assert.ok(
          plan.bytes <= 16384 && group % plan.HS === 0 && (plan.R * plan.HS) % plan.UT === 0,
        );
        assert.ok(plan.UT * 64 <= 256);
        if (M <= DECODE_MAX_ROWS) assert.equal(plan.R, 1);
      }
    }
  }
  // The 3B shape (24 heads over 8 kv heads, hd 128): a whole group per block, three rows in prefill.
  assert.deepEqual(
    { ...planBlocked(small, 512, 3, 128), bytes: 0 },
    { R: 3, HS: 3, CH: 16, UT: 3, bytes: 0 },
  );
});

/** Training-layout backward (dq, dk, dv) in the workgroup style, or with a forced block plan. */
async function backward(
  gpu: Gpu,
  c: Case,
  seed: number,
  how: AttentionVariant | BackwardPlan,
): Promise<Float32Array[]> {
  const { B, S, nHeads, nKv, hd } = c;
  const M = B * S;
  const q = uploadBuffer(gpu, randn(M * nHeads * hd, seed), "q");
  const kc = uploadBuffer(gpu, randn(M * nKv * hd, seed + 1, 1.5), "kc");
  const vc = uploadBuffer(gpu, randn(M * nKv * hd, seed + 2), "vc");
  const dout = uploadBuffer(gpu, randn(M * nHeads * hd, seed + 3), "dout");
  const seq = uploadBuffer(gpu, Uint32Array.from({ length: M }, (_, m) => Math.floor(m / S)), "s");
  const pos = uploadBuffer(gpu, Uint32Array.from({ length: M }, (_, m) => m % S), "p");
  const out = createBuffer(gpu, M * nHeads * hd * 4, "out");
  const lse = createBuffer(gpu, M * nHeads * 4, "lse");
  const dq = createBuffer(gpu, M * nHeads * hd * 4, "dq");
  const dk = createBuffer(gpu, M * nKv * hd * 4, "dk");
  const dv = createBuffer(gpu, M * nKv * hd * 4, "dv");
  const own = gpu.info.kernels;
  gpu.info.kernels = "workgroup";
  try {
    const rec = new Recorder(gpu);
    attention(rec, q, kc, vc, seq, pos, out, lse, M, nHeads, nKv, hd, S, 0.3, "rowwise");
    if (typeof how === "string") {
      attentionBackward(
        rec,
        q,
        kc,
        vc,
        out,
        lse,
        dout,
        dq,
        dk,
        dv,
        B,
        S,
        nHeads,
        nKv,
        hd,
        0.3,
        how,
      );
    } else {
      // The delta kernel first (as attentionBackward records it), then the forced plan.
      attentionDelta(rec, out, dout, dq, M * nHeads, hd);
      const bufs = { q, kc, vc, out, lse, dout, dq, dk, dv };
      attentionBackwardBlocked(rec, how, bufs, B, S, nHeads, nKv, hd, 0.3);
    }
    await rec.submit();
  } finally {
    gpu.info.kernels = own;
  }
  return await Promise.all([dq, dk, dv].map((b) => readF32(gpu, b)));
}

for (const c of CASES) {
  const { B, S, nHeads, nKv, hd } = c;
  Deno.test(`blocked attention backward gives the per-row kernels' bits (B=${B}, S=${S}, heads ${nHeads}/${nKv}, hd=${hd})`, async () => {
    const gpu = await getGpu();
    assert.ok(planBackwardBlocked(gpu, nHeads / nKv, hd), "the blocked kernels must apply here");
    const got = await backward(gpu, c, 31, "auto");
    const want = await backward(gpu, c, 31, "rowwise");
    ["dq", "dk", "dv"].forEach((name, i) => {
      assert.ok(got[i].some((x) => x !== 0), `${name}: all zero`);
      assertSameBits(got[i], want[i], name, ["blocked", "rowwise"]);
    });
    if (hd <= 16) {
      const ref = backwardRef(c, 31);
      ["dq", "dk", "dv"].forEach((name, i) => assertClose(got[i], ref[i], 1e-4, 1e-3, name));
    }
  });
}

/** f64 reference dq, dk, dv for backward()'s inputs (the same seeds), training layout. */
function backwardRef(c: Case, seed: number): Float64Array[] {
  const { B, S, nHeads, nKv, hd } = c;
  const M = B * S;
  const q = randn(M * nHeads * hd, seed), k = randn(M * nKv * hd, seed + 1, 1.5);
  const v = randn(M * nKv * hd, seed + 2), w = randn(M * nHeads * hd, seed + 3);
  const dq = new Float64Array(q.length), dk = new Float64Array(k.length);
  const dv = new Float64Array(v.length);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nHeads; h++) {
      const g = Math.floor(h / (nHeads / nKv));
      for (let i = 0; i < S; i++) {
        const qo = ((b * S + i) * nHeads + h) * hd,
          kv = (j: number) => ((b * S + j) * nKv + g) * hd;
        const s: number[] = [], dp: number[] = [];
        for (let j = 0; j <= i; j++) {
          let a = 0, e = 0;
          for (let d = 0; d < hd; d++) {
            a += q[qo + d] * k[kv(j) + d];
            e += w[qo + d] * v[kv(j) + d];
          }
          s.push(a * 0.3);
          dp.push(e);
        }
        const mx = Math.max(...s), ex = s.map((x) => Math.exp(x - mx));
        const z = ex.reduce((a, x) => a + x, 0), p = ex.map((x) => x / z);
        const D = p.reduce((a, x, j) => a + x * dp[j], 0);
        for (let j = 0; j <= i; j++) {
          const ds = p[j] * (dp[j] - D);
          for (let d = 0; d < hd; d++) {
            dq[qo + d] += 0.3 * ds * k[kv(j) + d];
            dk[kv(j) + d] += 0.3 * ds * q[qo + d];
            dv[kv(j) + d] += p[j] * w[qo + d];
          }
        }
      }
    }
  }
  return [dq, dk, dv];
}

Deno.test("blocked attention backward: narrow slices and odd block shapes give the same bits", async () => {
  const gpu = await getGpu();
  const c = { B: 2, S: 90, nHeads: 6, nKv: 2, hd: 72 };
  const want = await backward(gpu, c, 41, "rowwise");
  const plans: BackwardPlan[] = [
    { R: 5, HS: 1, UTq: 1, KB: 3, UTk: 3, CH: 16 },
    { R: 1, HS: 3, UTq: 3, KB: 1, UTk: 1, CH: 32 },
  ];
  for (const plan of plans) {
    const got = await backward(gpu, c, 41, plan);
    ["dq", "dk", "dv"].forEach((name, i) =>
      assertSameBits(got[i], want[i], `${name} ${JSON.stringify(plan)}`, ["blocked", "rowwise"])
    );
  }
});

Deno.test("blocked attention backward plans fit WebGPU's guaranteed 16 KiB of workgroup memory", () => {
  const limits = { maxComputeWorkgroupStorageSize: 16384, maxComputeInvocationsPerWorkgroup: 256 };
  const small = { device: { limits } } as unknown as Gpu;
  for (const hd of [8, 64, 72, 128, 256]) {
    for (const group of [1, 2, 3, 4, 6, 8, 16]) {
      const plan = planBackwardBlocked(small, group, hd);
      assert.ok(plan, `hd ${hd}, group ${group}: no plan`);
      const bytes = (U: number) => backwardBlockBytes(U, hd, plan.CH);
      assert.ok(bytes(plan.R * plan.HS) <= 16384 && bytes(plan.KB) <= 16384);
      assert.ok(group % plan.HS === 0 && (plan.R * plan.HS) % plan.UTq === 0);
      assert.ok(plan.KB % plan.UTk === 0 && plan.UTq * 64 <= 256 && plan.UTk * 64 <= 256);
    }
  }
});
