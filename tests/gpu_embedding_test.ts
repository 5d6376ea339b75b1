import assert from "node:assert/strict";
import { getGpu } from "../gpu/device.ts";
import { embedding, embeddingBackward } from "../gpu/embedding.ts";
import { Recorder } from "../gpu/recorder.ts";
import { assertClose, randn } from "./helpers.ts";
import { dot64, finiteDiff, randInts, run, up, zeros } from "./gpu_kernel_helpers.ts";

/** f32 reference of the backward with the kernel's exact order: ascending t, then one add. */
function refBackward(tokens: Uint32Array, dy: Float32Array, dtable0: Float32Array, D: number) {
  const out = dtable0.slice();
  const seen = new Set<number>();
  for (const v of tokens) {
    if (seen.has(v)) continue;
    seen.add(v);
    for (let d = 0; d < D; d++) {
      let s = 0;
      tokens.forEach((u, t) => {
        if (u === v) s = Math.fround(s + dy[t * D + d]);
      });
      out[v * D + d] = Math.fround(out[v * D + d] + s);
    }
  }
  return out;
}

Deno.test("embedding forward gathers rows; backward sums repeated tokens in order", async () => {
  const gpu = await getGpu();
  let seed = 400;
  for (const [T, V, D] of [[1, 1, 1], [5, 3, 7], [40, 11, 300], [3, 1000, 2]]) {
    const table = randn(V * D, seed++), tokens = randInts(T, V, seed++);
    const dy = randn(T * D, seed++), dtable0 = randn(V * D, seed++);
    const y = zeros(gpu, T * D), dtable = up(gpu, dtable0);
    const [gy, gdt] = await run(gpu, (rec) => {
      embedding(rec, up(gpu, tokens), up(gpu, table), y, T, D);
      embeddingBackward(rec, tokens, up(gpu, dy), dtable, T, D);
    }, [[y, T * D], [dtable, V * D]]);
    const ry = new Float32Array(T * D);
    tokens.forEach((v, t) => ry.set(table.subarray(v * D, (v + 1) * D), t * D));
    assert.deepEqual(Array.from(gy), Array.from(ry), `forward T=${T} V=${V} D=${D}`);
    assert.deepEqual(
      Array.from(gdt),
      Array.from(refBackward(tokens, dy, dtable0, D)),
      `backward T=${T} V=${V} D=${D}`,
    );
  }
});

Deno.test("embeddingBackward twice in one submission, then again after it", async () => {
  const gpu = await getGpu();
  const T = 9, V = 6, D = 5;
  const a = randInts(T, V, 1), b = randInts(T, V, 2), c = randInts(T, V, 3);
  const dy = randn(T * D, 4);
  const gdy = up(gpu, dy), dtable = zeros(gpu, V * D);
  const rec = new Recorder(gpu);
  embeddingBackward(rec, a, gdy, dtable, T, D);
  embeddingBackward(rec, b, gdy, dtable, T, D);
  await rec.submit();
  embeddingBackward(rec, c, gdy, dtable, T, D);
  const got = rec.read(dtable, 0, V * D * 4);
  await rec.submit();
  let want = new Float32Array(V * D);
  for (const toks of [a, b, c]) want = refBackward(toks, dy, want, D);
  assert.deepEqual(Array.from(new Float32Array(await got)), Array.from(want));
});

Deno.test("embedding rows are bit-identical alone and inside a batch; bad ids are caught", async () => {
  const gpu = await getGpu();
  const T = 7, V = 20, D = 33;
  const table = up(gpu, randn(V * D, 5)), tokens = randInts(T, V, 6);
  const yAll = zeros(gpu, T * D), y1 = zeros(gpu, D), yBad = zeros(gpu, D);
  const [all, one, bad] = await run(gpu, (rec) => {
    embedding(rec, up(gpu, tokens), table, yAll, T, D);
    embedding(rec, up(gpu, tokens.slice(4, 5)), table, y1, 1, D);
    embedding(rec, up(gpu, new Uint32Array([V + 5])), table, yBad, 1, D);
  }, [[yAll, T * D], [y1, D], [yBad, D]]);
  assert.deepEqual(Array.from(one), Array.from(all.slice(4 * D, 5 * D)));
  assert.ok(bad.every(Number.isNaN), "out-of-range token gives NaN");
  const rec = new Recorder(gpu);
  assert.throws(
    () =>
      embeddingBackward(rec, new Uint32Array([1, V]), zeros(gpu, 2 * D), zeros(gpu, V * D), 2, D),
    /tokensHost\[1\] = 20 is outside dtable/,
  );
});

Deno.test("embedding gradient agrees with finite differences of sum(dy * y)", async () => {
  const gpu = await getGpu();
  const T = 6, V = 4, D = 3;
  const table = randn(V * D, 91), tokens = new Uint32Array([2, 0, 2, 3, 2, 0]);
  const dy = randn(T * D, 92);
  const dtable = zeros(gpu, V * D);
  const [g] = await run(gpu, (rec) => embeddingBackward(rec, tokens, up(gpu, dy), dtable, T, D), [[
    dtable,
    V * D,
  ]]);
  const loss = async (tb: Float32Array) => {
    const y = zeros(gpu, T * D);
    const [yv] = await run(gpu, (rec) => embedding(rec, up(gpu, tokens), up(gpu, tb), y, T, D), [[
      y,
      T * D,
    ]]);
    return dot64(yv, dy);
  };
  const probe = [0, 4, 2 * D + 1, 3 * D + 2];
  const fd = await finiteDiff(table, probe, 1e-2, loss);
  assertClose(probe.map((i) => g[i]), fd, 1e-3, 1e-3, "dtable vs finite differences");
  assert.equal(g[D + 1], 0, "a token that never occurs gets no gradient");
});
