import assert from "node:assert/strict";
import { getGpu } from "../gpu/device.ts";
import { createBuffer, readU32, uploadBuffer } from "../gpu/buffers.ts";
import { Recorder } from "../gpu/recorder.ts";
import { philox4x32, philoxFill, samplingUniform, seedKey } from "../gpu/rng.ts";
import { sample, type SamplingOptions } from "../gpu/sampling.ts";
import { randn } from "./helpers.ts";
import { assertSameBits, inBothStyles } from "./gpu_kernel_helpers.ts";

const hex = (a: Uint32Array) => Array.from(a, (x) => x.toString(16).padStart(8, "0")).join(" ");

Deno.test("philox4x32 reference matches the Random123 known answers", () => {
  assert.equal(hex(philox4x32([0, 0, 0, 0], [0, 0])), "6627e8d5 e169c58d bc57ac4c 9b00dbd8");
  const f = 0xffffffff;
  assert.equal(hex(philox4x32([f, f, f, f], [f, f])), "408f276d 41c83b0e a20bc7c6 6d5451fd");
  assert.equal(
    hex(philox4x32([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0])),
    "d16cfe09 94fdcceb 5001e420 24126ea1",
  );
  assert.deepEqual(seedKey(2 ** 32 + 5), [5, 1]);
  assert.throws(() => seedKey(-1), /seed/);
});

Deno.test("the WGSL philox matches the TypeScript reference bit for bit", async () => {
  const gpu = await getGpu();
  const n = 300;
  const ctr = new Uint32Array(n * 4);
  let s = 12345;
  for (let i = 0; i < ctr.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    ctr[i] = i % 7 === 0 ? 0xffffffff : i % 5 === 0 ? 0 : s;
  }
  for (const key of [[0, 0], [0xffffffff, 0xffffffff], [0xa4093822, 0x299f31d0]] as const) {
    const out = createBuffer(gpu, n * 16, "out");
    const rec = new Recorder(gpu);
    philoxFill(rec, uploadBuffer(gpu, ctr, "ctr"), out, n, key);
    await rec.submit();
    const got = await readU32(gpu, out, n * 4);
    for (let i = 0; i < n; i++) {
      const c = [ctr[4 * i], ctr[4 * i + 1], ctr[4 * i + 2], ctr[4 * i + 3]] as const;
      assert.deepEqual(got.slice(4 * i, 4 * i + 4), philox4x32(c, key), `counter ${i}`);
    }
  }
});

async function runSample(
  logits: Float32Array,
  M: number,
  V: number,
  opts: SamplingOptions,
  positions: Uint32Array,
  rows?: Uint32Array,
): Promise<Uint32Array> {
  const gpu = await getGpu();
  const tokens = createBuffer(gpu, M * 4, "tokens");
  const rec = new Recorder(gpu);
  sample(
    rec,
    uploadBuffer(gpu, logits, "logits"),
    tokens,
    M,
    V,
    opts,
    uploadBuffer(gpu, positions, "positions"),
    rows ? uploadBuffer(gpu, rows, "rows") : undefined,
  );
  await rec.submit();
  return readU32(gpu, tokens, M);
}

/** The same logits row repeated M times. */
function tile(row: Float32Array, M: number): Float32Array {
  const out = new Float32Array(row.length * M);
  for (let m = 0; m < M; m++) out.set(row, m * row.length);
  return out;
}

function softmax(row: ArrayLike<number>, temperature: number): number[] {
  const z = Array.from(row, (x) => x / temperature);
  const mx = Math.max(...z);
  const e = z.map((x) => Math.exp(x - mx));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

/** CPU nucleus: indices of the smallest set of most probable tokens with mass >= topP. */
function nucleus(p: number[], topP: number): Set<number> {
  const order = p.map((_, i) => i).sort((a, b) => p[b] - p[a] || a - b);
  const set = new Set<number>();
  let mass = 0;
  for (const i of order) {
    if (mass >= topP) break;
    set.add(i);
    mass += p[i];
  }
  return set;
}

/** Pearson chi-square of counts against probabilities (over tokens with p > 0). */
function chiSquare(counts: number[], p: number[], n: number): number {
  let chi = 0;
  for (let i = 0; i < p.length; i++) {
    if (p[i] > 0) chi += (counts[i] - n * p[i]) ** 2 / (n * p[i]);
  }
  return chi;
}

function countTokens(tokens: Uint32Array, V: number): number[] {
  const c = new Array(V).fill(0);
  for (const t of tokens) c[t]++;
  return c;
}

Deno.test("greedy is the argmax with the lowest index on ties", async () => {
  for (const V of [1, 7, 256, 300, 1000]) {
    const M = 5;
    const logits = randn(M * V, V);
    // Plant ties on the max in some rows.
    for (let m = 0; m < M; m++) {
      if (V > 3 && m % 2 === 0) {
        logits[m * V + V - 1] = 9;
        logits[m * V + Math.floor(V / 3)] = 9;
        logits[m * V + V - 2] = 9;
      }
    }
    const tokens = await runSample(
      logits,
      M,
      V,
      { temperature: 0, topP: 1, seed: 1, stream: 0 },
      new Uint32Array(M),
    );
    for (let m = 0; m < M; m++) {
      const row = Array.from(logits.subarray(m * V, (m + 1) * V));
      assert.equal(tokens[m], row.indexOf(Math.max(...row)), `V=${V} row ${m}`);
    }
  }
});

Deno.test("temperature sampling frequencies match softmax; draws match the TS reference sampler", async () => {
  const V = 6, M = 4000;
  const row = new Float32Array([1.0, 0.2, -0.5, 2.0, 0.0, 1.3]);
  for (const temperature of [0.7, 1.5]) {
    const opts = { temperature, topP: 1, seed: 42, stream: 3 };
    // Many rows at one position, and one row id at many positions.
    const byRow = await runSample(tile(row, M), M, V, opts, new Uint32Array(M).fill(5));
    const byPos = await runSample(
      tile(row, M),
      M,
      V,
      opts,
      Uint32Array.from({ length: M }, (_, i) => i),
      new Uint32Array(M).fill(17),
    );
    const p = softmax(row, temperature);
    for (const [what, toks] of [["rows", byRow], ["positions", byPos]] as const) {
      const chi = chiSquare(countTokens(toks, V), p, M);
      // 5 degrees of freedom: P(chi^2 > 25.7) = 1e-4.
      assert.ok(chi < 25.7, `T=${temperature} over ${what}: chi-square ${chi.toFixed(2)}`);
    }
    // CPU inverse-CDF with the reference RNG: only draws within rounding of a CDF step may differ.
    let mismatches = 0;
    const cdf = p.map((_, i) => p.slice(0, i + 1).reduce((a, b) => a + b, 0));
    for (let m = 0; m < M; m++) {
      const u = samplingUniform(42, 3, m, 5);
      const want = cdf.findIndex((c) => u < c);
      if (want !== byRow[m]) {
        mismatches++;
        assert.ok(Math.min(...cdf.map((c) => Math.abs(c - u))) < 1e-5, `row ${m}`);
      }
    }
    assert.ok(mismatches <= 2, `${mismatches} draws differ from the reference sampler`);
  }
});

Deno.test("top-p never leaves the CPU nucleus and samples it in proportion", async () => {
  const cases = [
    { V: 40, M: 3000, topP: 0.3, scale: 2 },
    { V: 40, M: 3000, topP: 0.8, scale: 2 },
    { V: 300, M: 1000, topP: 0.95, scale: 1 },
    { V: 5000, M: 40, topP: 0.9, scale: 3 },
    { V: 40, M: 200, topP: 1e-6, scale: 2 },
  ];
  for (const [ci, { V, M, topP, scale }] of cases.entries()) {
    const row = randn(V, 50 + ci, scale);
    const temperature = 0.9;
    const tokens = await runSample(
      tile(row, M),
      M,
      V,
      { temperature, topP, seed: 7, stream: 1 },
      new Uint32Array(M).fill(2),
    );
    const p = softmax(row, temperature);
    const nuc = nucleus(p, topP);
    for (const t of tokens) assert.ok(nuc.has(t), `case ${ci}: token ${t} is outside the nucleus`);
    if (nuc.size > 1 && M >= 1000) {
      const mass = [...nuc].reduce((a, i) => a + p[i], 0);
      const q = p.map((x, i) => nuc.has(i) ? x / mass : 0);
      const chi = chiSquare(countTokens(tokens, V), q, M);
      const dof = nuc.size - 1;
      // Generous bound: mean dof, sd sqrt(2 dof).
      assert.ok(
        chi < dof + 6 * Math.sqrt(2 * dof) + 10,
        `case ${ci}: chi-square ${chi} (dof ${dof})`,
      );
      const seen = new Set(tokens);
      for (const i of nuc) {
        // Expected count >= 8: missing it by chance has probability < e^-8.
        if (q[i] * M >= 8) assert.ok(seen.has(i), `case ${ci}: nucleus token ${i} never drawn`);
      }
    }
    if (topP === 1e-6) assert.ok(tokens.every((t) => t === p.indexOf(Math.max(...p))));
  }
});

Deno.test("the same (seed, stream, row, position) gives the same token; other keys differ", async () => {
  const V = 50, M = 64;
  const logits = randn(M * V, 9, 0.5); // flat-ish rows: draws depend strongly on the key
  const rows = Uint32Array.from({ length: M }, (_, i) => 1000 + 3 * i);
  const pos = Uint32Array.from({ length: M }, (_, i) => i % 5);
  const base = { temperature: 1, topP: 0.9, seed: 123, stream: 0 };
  const a = await runSample(logits, M, V, base, pos, rows);
  assert.deepEqual(await runSample(logits, M, V, base, pos, rows), a);
  // A row alone (same row id and position) draws the same token as inside the batch.
  for (const m of [0, 17, 63]) {
    const alone = await runSample(
      logits.slice(m * V, (m + 1) * V),
      1,
      V,
      base,
      pos.slice(m, m + 1),
      rows.slice(m, m + 1),
    );
    assert.equal(alone[0], a[m], `row ${m}`);
  }
  const differs = (x: Uint32Array) => x.some((t, i) => t !== a[i]);
  assert.ok(differs(await runSample(logits, M, V, { ...base, seed: 124 }, pos, rows)), "seed");
  assert.ok(differs(await runSample(logits, M, V, { ...base, stream: 1 }, pos, rows)), "stream");
  assert.ok(differs(await runSample(logits, M, V, base, pos.map((x) => x + 1), rows)), "position");
  assert.ok(differs(await runSample(logits, M, V, base, pos, rows.map((x) => x + 1))), "row id");
  // Default row ids are 0..M-1.
  const ids = Uint32Array.from({ length: M }, (_, i) => i);
  assert.deepEqual(
    await runSample(logits, M, V, base, pos),
    await runSample(logits, M, V, base, pos, ids),
  );
});

Deno.test("sample rejects bad settings with a clear error", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  const b = createBuffer(gpu, 64, "b");
  const bad = (o: Partial<SamplingOptions>, re: RegExp) =>
    assert.throws(
      () => sample(rec, b, b, 1, 4, { temperature: 1, topP: 1, seed: 1, stream: 0, ...o }, b),
      re,
    );
  bad({ temperature: -1 }, /temperature/);
  bad({ topP: 0 }, /topP/);
  bad({ topP: 1.5 }, /topP/);
  bad({ seed: 1.5 }, /seed/);
  bad({ stream: -2 }, /stream/);
});

Deno.test("serial and workgroup samplers draw the same tokens (greedy, temperature, top-p)", async () => {
  const gpu = await getGpu();
  const cases: [number, SamplingOptions][] = [
    [7, { temperature: 0, topP: 1, seed: 3, stream: 1 }],
    [300, { temperature: 0, topP: 1, seed: 3, stream: 1 }],
    [103, { temperature: 1, topP: 1, seed: 5, stream: 2 }],
    [512, { temperature: 0.7, topP: 1, seed: 6, stream: 0 }],
    [103, { temperature: 1, topP: 0.9, seed: 7, stream: 3 }],
    [300, { temperature: 0.5, topP: 0.5, seed: 8, stream: 4 }],
  ];
  const M = 200;
  for (const [V, opts] of cases) {
    const logits = randn(M * V, V + 11, 2);
    for (let m = 0; m < M; m += 3) logits[m * V + (m % V)] = logits[m * V]; // ties
    const positions = Uint32Array.from({ length: M }, (_, m) => 5 + m);
    const rows = Uint32Array.from({ length: M }, (_, m) => 1000 + 7 * m);
    const got = await inBothStyles(gpu, async (g) => {
      const out = createBuffer(g, M * 4, "tokens");
      const rec = new Recorder(g);
      const lg = uploadBuffer(g, logits, "logits");
      sample(
        rec,
        lg,
        out,
        M,
        V,
        opts,
        uploadBuffer(g, positions, "pos"),
        uploadBuffer(g, rows, "r"),
      );
      const read = rec.read(out);
      await rec.submit();
      return [new Float32Array(await read)];
    });
    assertSameBits(
      got.workgroup[0],
      got.serial[0],
      `tokens (u32 seen as f32) V=${V} ${JSON.stringify(opts)}`,
    );
  }
});
