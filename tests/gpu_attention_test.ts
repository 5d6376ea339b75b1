import assert from "node:assert/strict";
import { getGpu } from "../gpu/device.ts";
import { createBuffer, readF32, uploadBuffer } from "../gpu/buffers.ts";
import { Recorder } from "../gpu/recorder.ts";
import { attention, attentionBackward, kvStore } from "../gpu/attention.ts";
import { assertClose, randn } from "./helpers.ts";

interface Shape {
  nHeads: number;
  nKv: number;
  hd: number;
}

/** f64 reference: out and lse for rows (seq, pos) over caches [B, S, nKv, hd]. */
function attentionRef(
  q: Float32Array,
  kc: Float32Array,
  vc: Float32Array,
  seq: Uint32Array,
  pos: Uint32Array,
  { nHeads, nKv, hd }: Shape,
  S: number,
  scale: number,
): { out: Float64Array; lse: Float64Array } {
  const M = seq.length, out = new Float64Array(M * nHeads * hd), lse = new Float64Array(M * nHeads);
  for (let m = 0; m < M; m++) {
    for (let h = 0; h < nHeads; h++) {
      const g = Math.floor(h / (nHeads / nKv)), qo = (m * nHeads + h) * hd;
      const s: number[] = [];
      for (let j = 0; j <= pos[m]; j++) {
        const ko = ((seq[m] * S + j) * nKv + g) * hd;
        let dot = 0;
        for (let d = 0; d < hd; d++) dot += q[qo + d] * kc[ko + d];
        s.push(dot * scale);
      }
      const mx = Math.max(...s);
      const e = s.map((x) => Math.exp(x - mx));
      const z = e.reduce((a, b) => a + b, 0);
      lse[m * nHeads + h] = mx + Math.log(z);
      for (let j = 0; j <= pos[m]; j++) {
        const vo = ((seq[m] * S + j) * nKv + g) * hd;
        for (let d = 0; d < hd; d++) out[qo + d] += e[j] / z * vc[vo + d];
      }
    }
  }
  return { out, lse };
}

/** Uploads k/v rows, stores them into fresh caches with kvStore, runs attention on `rows`. */
async function runAttention(
  sh: Shape,
  B: number,
  S: number,
  kvRows: { seq: Uint32Array; pos: Uint32Array; k: Float32Array; v: Float32Array },
  rows: { seq: Uint32Array; pos: Uint32Array; q: Float32Array },
  scale: number,
): Promise<{ out: Float32Array; lse: Float32Array; kc: Float32Array; vc: Float32Array }> {
  const gpu = await getGpu();
  const { nHeads, nKv, hd } = sh;
  const cacheBytes = B * S * nKv * hd * 4;
  const kc = createBuffer(gpu, cacheBytes, "kc"), vc = createBuffer(gpu, cacheBytes, "vc");
  const Mkv = kvRows.seq.length, M = rows.seq.length;
  const rec = new Recorder(gpu);
  kvStore(
    rec,
    uploadBuffer(gpu, kvRows.k, "k"),
    uploadBuffer(gpu, kvRows.v, "v"),
    kc,
    vc,
    uploadBuffer(gpu, kvRows.seq, "kseq"),
    uploadBuffer(gpu, kvRows.pos, "kpos"),
    Mkv,
    nKv,
    hd,
    S,
  );
  const out = createBuffer(gpu, M * nHeads * hd * 4, "out");
  const lse = createBuffer(gpu, M * nHeads * 4, "lse");
  attention(
    rec,
    uploadBuffer(gpu, rows.q, "q"),
    kc,
    vc,
    uploadBuffer(gpu, rows.seq, "seq"),
    uploadBuffer(gpu, rows.pos, "pos"),
    out,
    lse,
    M,
    nHeads,
    nKv,
    hd,
    S,
    scale,
  );
  await rec.submit();
  return {
    out: await readF32(gpu, out, M * nHeads * hd),
    lse: await readF32(gpu, lse, M * nHeads),
    kc: await readF32(gpu, kc, B * S * nKv * hd),
    vc: await readF32(gpu, vc, B * S * nKv * hd),
  };
}

/** Every position 0..len-1 of each sequence, as (seq, pos) rows. */
function allPositions(lengths: number[]): { seq: Uint32Array; pos: Uint32Array } {
  const seq: number[] = [], pos: number[] = [];
  lengths.forEach((len, b) => {
    for (let p = 0; p < len; p++) {
      seq.push(b);
      pos.push(p);
    }
  });
  return { seq: new Uint32Array(seq), pos: new Uint32Array(pos) };
}

const SHAPES: Shape[] = [
  { nHeads: 1, nKv: 1, hd: 8 },
  { nHeads: 2, nKv: 1, hd: 12 },
  { nHeads: 4, nKv: 2, hd: 64 },
  { nHeads: 8, nKv: 2, hd: 128 },
  { nHeads: 3, nKv: 3, hd: 72 },
];

Deno.test("kvStore + attention match the f64 reference; prefill and decode give the same bits", async () => {
  for (const [si, sh] of SHAPES.entries()) {
    const { nHeads, nKv, hd } = sh;
    // Sequences of different lengths, one crossing several 64-key tiles; the cache has spare room.
    const lengths = hd >= 64 ? [1, 70, 5] : [3, 130, 1, 64];
    const B = lengths.length, S = Math.max(...lengths) + 3;
    const { seq, pos } = allPositions(lengths);
    const M = seq.length;
    const k = randn(M * nKv * hd, 100 + si), v = randn(M * nKv * hd, 200 + si);
    const q = randn(M * nHeads * hd, 300 + si, 1.5);
    const scale = 1 / Math.sqrt(hd);
    const pre = await runAttention(sh, B, S, { seq, pos, k, v }, { seq, pos, q }, scale);

    // The cache holds exactly the stored rows.
    for (let m = 0; m < M; m++) {
      const dst = (seq[m] * S + pos[m]) * nKv * hd;
      const src = m * nKv * hd;
      assert.deepEqual(pre.kc.slice(dst, dst + nKv * hd), k.slice(src, src + nKv * hd));
      assert.deepEqual(pre.vc.slice(dst, dst + nKv * hd), v.slice(src, src + nKv * hd));
    }

    const ref = attentionRef(q, pre.kc, pre.vc, seq, pos, sh, S, scale);
    assertClose(pre.out, ref.out, 2e-5, 1e-4, `out (shape ${si})`);
    assertClose(pre.lse, ref.lse, 2e-5, 1e-5, `lse (shape ${si})`);

    // Decode: the last position of every sequence alone (one row per sequence, different
    // lengths), after the cache was filled by a prefill of all earlier positions.
    const lastRows = lengths.map((len, b) =>
      lengths.slice(0, b).reduce((a, x) => a + x, 0) + len - 1
    );
    const dq = new Float32Array(B * nHeads * hd);
    lastRows.forEach((m, b) =>
      dq.set(q.slice(m * nHeads * hd, (m + 1) * nHeads * hd), b * nHeads * hd)
    );
    const dec = await runAttention(
      sh,
      B,
      S,
      { seq, pos, k, v },
      {
        seq: Uint32Array.from(lastRows, (m) => seq[m]),
        pos: Uint32Array.from(lastRows, (m) => pos[m]),
        q: dq,
      },
      scale,
    );
    lastRows.forEach((m, b) => {
      const r = nHeads * hd;
      assert.deepEqual(
        dec.out.slice(b * r, (b + 1) * r),
        pre.out.slice(m * r, (m + 1) * r),
        `decode row ${b}`,
      );
      assert.deepEqual(
        dec.lse.slice(b * nHeads, (b + 1) * nHeads),
        pre.lse.slice(m * nHeads, (m + 1) * nHeads),
      );
    });
  }
});

Deno.test("attention of one row alone equals that row inside a prefill batch", async () => {
  const sh = { nHeads: 6, nKv: 2, hd: 16 };
  const lengths = [9, 67];
  const { seq, pos } = allPositions(lengths);
  const M = seq.length, S = 80, B = 2;
  const k = randn(M * sh.nKv * sh.hd, 1), v = randn(M * sh.nKv * sh.hd, 2);
  const q = randn(M * sh.nHeads * sh.hd, 3);
  const kv = { seq, pos, k, v };
  const all = await runAttention(sh, B, S, kv, { seq, pos, q }, 0.25);
  const r = sh.nHeads * sh.hd;
  for (const m of [0, 8, 9, 72, M - 1]) {
    const one = await runAttention(sh, B, S, kv, {
      seq: seq.slice(m, m + 1),
      pos: pos.slice(m, m + 1),
      q: q.slice(m * r, (m + 1) * r),
    }, 0.25);
    assert.deepEqual(one.out, all.out.slice(m * r, (m + 1) * r), `row ${m}`);
  }
  // The cache's capacity S (generation) vs exactly the sequence length (training) changes only
  // strides, never the arithmetic.
  const tight = await runAttention(sh, B, 67, kv, { seq, pos, q }, 0.25);
  assert.deepEqual(tight.out, all.out);
  assert.deepEqual(tight.lse, all.lse);
});

/** f64 reference gradients in the training layout (M = B*S, causal within each sequence). */
function attentionBackwardRef(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  dout: Float32Array,
  B: number,
  S: number,
  { nHeads, nKv, hd }: Shape,
  scale: number,
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const dq = new Float64Array(q.length), dk = new Float64Array(k.length);
  const dv = new Float64Array(v.length);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nHeads; h++) {
      const g = Math.floor(h / (nHeads / nKv));
      for (let i = 0; i < S; i++) {
        const qo = ((b * S + i) * nHeads + h) * hd;
        const kvo = (j: number) => ((b * S + j) * nKv + g) * hd;
        const s: number[] = [], dp: number[] = [];
        for (let j = 0; j <= i; j++) {
          let a = 0, c = 0;
          for (let d = 0; d < hd; d++) {
            a += q[qo + d] * k[kvo(j) + d];
            c += dout[qo + d] * v[kvo(j) + d];
          }
          s.push(a * scale);
          dp.push(c);
        }
        const mx = Math.max(...s);
        const e = s.map((x) => Math.exp(x - mx));
        const z = e.reduce((a, x) => a + x, 0);
        const p = e.map((x) => x / z);
        const D = p.reduce((a, x, j) => a + x * dp[j], 0);
        for (let j = 0; j <= i; j++) {
          const ds = p[j] * (dp[j] - D);
          for (let d = 0; d < hd; d++) {
            dq[qo + d] += scale * ds * k[kvo(j) + d];
            dk[kvo(j) + d] += scale * ds * q[qo + d];
            dv[kvo(j) + d] += p[j] * dout[qo + d];
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}

/** Training-layout forward (and optionally backward) on the GPU. */
async function runTraining(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  dout: Float32Array | null,
  B: number,
  S: number,
  sh: Shape,
  scale: number,
) {
  const gpu = await getGpu();
  const { nHeads, nKv, hd } = sh;
  const M = B * S;
  const seq = Uint32Array.from({ length: M }, (_, m) => Math.floor(m / S));
  const pos = Uint32Array.from({ length: M }, (_, m) => m % S);
  const gq = uploadBuffer(gpu, q, "q"), gk = uploadBuffer(gpu, k, "k");
  const gv = uploadBuffer(gpu, v, "v");
  const out = createBuffer(gpu, M * nHeads * hd * 4, "out");
  const lse = createBuffer(gpu, M * nHeads * 4, "lse");
  const rec = new Recorder(gpu);
  attention(
    rec,
    gq,
    gk,
    gv,
    uploadBuffer(gpu, seq, "seq"),
    uploadBuffer(gpu, pos, "pos"),
    out,
    lse,
    M,
    nHeads,
    nKv,
    hd,
    S,
    scale,
  );
  if (!dout) {
    await rec.submit();
    return { out: await readF32(gpu, out, M * nHeads * hd) };
  }
  const dq = createBuffer(gpu, q.byteLength, "dq"), dk = createBuffer(gpu, k.byteLength, "dk");
  const dv = createBuffer(gpu, v.byteLength, "dv");
  attentionBackward(
    rec,
    gq,
    gk,
    gv,
    out,
    lse,
    uploadBuffer(gpu, dout, "dout"),
    dq,
    dk,
    dv,
    B,
    S,
    nHeads,
    nKv,
    hd,
    scale,
  );
  await rec.submit();
  return {
    out: await readF32(gpu, out, M * nHeads * hd),
    dq: await readF32(gpu, dq, q.length),
    dk: await readF32(gpu, dk, k.length),
    dv: await readF32(gpu, dv, v.length),
  };
}

Deno.test("attentionBackward matches the f64 reference and central finite differences", async () => {
  const cases = [
    { B: 2, S: 3, sh: { nHeads: 1, nKv: 1, hd: 12 } },
    { B: 2, S: 70, sh: { nHeads: 4, nKv: 2, hd: 8 } },
    { B: 1, S: 5, sh: { nHeads: 4, nKv: 1, hd: 128 } },
  ];
  for (const [ci, { B, S, sh }] of cases.entries()) {
    const { nHeads, nKv, hd } = sh;
    const M = B * S, scale = 1 / Math.sqrt(hd);
    const q = randn(M * nHeads * hd, 10 + ci), k = randn(M * nKv * hd, 20 + ci);
    const v = randn(M * nKv * hd, 30 + ci), w = randn(M * nHeads * hd, 40 + ci);
    const got = await runTraining(q, k, v, w, B, S, sh, scale);
    const ref = attentionBackwardRef(q, k, v, w, B, S, sh, scale);
    assertClose(got.dq!, ref.dq, 1e-4, 1e-3, `dq (case ${ci})`);
    assertClose(got.dk!, ref.dk, 1e-4, 1e-3, `dk (case ${ci})`);
    assertClose(got.dv!, ref.dv, 1e-4, 1e-3, `dv (case ${ci})`);
    const again = await runTraining(q, k, v, w, B, S, sh, scale);
    assert.deepEqual(again.dk, got.dk, "backward is not deterministic");

    // Scalar loss L = sum(w * out); central differences on a few coordinates of q, k, v.
    const loss = async (qq: Float32Array, kk: Float32Array, vv: Float32Array) => {
      const { out } = await runTraining(qq, kk, vv, null, B, S, sh, scale);
      let s = 0;
      for (let i = 0; i < out.length; i++) s += w[i] * out[i];
      return s;
    };
    const eps = 1e-2;
    const tensors = [
      { name: "q", x: q, grad: got.dq! },
      { name: "k", x: k, grad: got.dk! },
      { name: "v", x: v, grad: got.dv! },
    ];
    for (const [ti, t] of tensors.entries()) {
      for (const idx of [0, t.x.length - 1, Math.floor(t.x.length / 3) + ti]) {
        const xp = t.x.slice(), xm = t.x.slice();
        xp[idx] += eps;
        xm[idx] -= eps;
        const args = (x: Float32Array) =>
          [ti === 0 ? x : q, ti === 1 ? x : k, ti === 2 ? x : v] as const;
        const fd = (await loss(...args(xp)) - await loss(...args(xm))) / (2 * eps);
        const tol = 2e-3 + 1e-2 * Math.abs(fd);
        assert.ok(
          Math.abs(fd - t.grad[idx]) < tol,
          `case ${ci} d${t.name}[${idx}]: finite difference ${fd} vs kernel ${t.grad[idx]}`,
        );
      }
    }
  }
});

Deno.test("attention over thousands of positions with head_dim 128", async () => {
  const sh = { nHeads: 2, nKv: 1, hd: 128 };
  const S = 3000, B = 2;
  const { seq, pos } = allPositions([S, 1500]);
  const Mkv = seq.length;
  const k = randn(Mkv * sh.hd, 61), v = randn(Mkv * sh.hd, 62);
  // A few query rows: late positions in both sequences, alone and in a batch with others.
  const picks = [S - 1, 2047, 64, S + 1499, S];
  const rq = randn(picks.length * sh.nHeads * sh.hd, 63, 2);
  const rows = {
    seq: Uint32Array.from(picks, (m) => seq[m]),
    pos: Uint32Array.from(picks, (m) => pos[m]),
    q: rq,
  };
  const kv = { seq, pos, k, v };
  const all = await runAttention(sh, B, S, kv, rows, 1 / Math.sqrt(sh.hd));
  const ref = attentionRef(rq, all.kc, all.vc, rows.seq, rows.pos, sh, S, 1 / Math.sqrt(sh.hd));
  assertClose(all.out, ref.out, 2e-5, 1e-4, "out");
  assertClose(all.lse, ref.lse, 2e-5, 1e-5, "lse");
  const r = sh.nHeads * sh.hd;
  const one = await runAttention(sh, B, S, kv, {
    seq: rows.seq.slice(0, 1),
    pos: rows.pos.slice(0, 1),
    q: rq.slice(0, r),
  }, 1 / Math.sqrt(sh.hd));
  assert.deepEqual(one.out, all.out.slice(0, r));
});
