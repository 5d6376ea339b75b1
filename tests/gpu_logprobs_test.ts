import assert from "node:assert/strict";
import { getGpu } from "../gpu/device.ts";
import { entropy, tokenLogprobs, tokenLogprobsBackward } from "../gpu/logprobs.ts";
import { assertClose, randn } from "./helpers.ts";
import { dot64, finiteDiff, randInts, run, up, zeros } from "./gpu_kernel_helpers.ts";

/** f64 reference: per-row lse, log-prob of the target, entropy and the logits gradient. */
function reference(
  logits: Float32Array,
  targets: Uint32Array,
  dlogp: Float32Array,
  M: number,
  V: number,
) {
  const lse = new Float64Array(M), logp = new Float64Array(M), ent = new Float64Array(M);
  const dlogits = new Float64Array(M * V);
  for (let m = 0; m < M; m++) {
    const row = logits.subarray(m * V, (m + 1) * V);
    let mx = -Infinity;
    for (const x of row) mx = Math.max(mx, x);
    let s = 0;
    for (const x of row) s += Math.exp(x - mx);
    lse[m] = mx + Math.log(s);
    logp[m] = row[targets[m]] - lse[m];
    let h = 0;
    for (let v = 0; v < V; v++) {
      const z = row[v] - lse[m];
      h -= Math.exp(z) * z;
      dlogits[m * V + v] = dlogp[m] * ((v === targets[m] ? 1 : 0) - Math.exp(z));
    }
    ent[m] = h;
  }
  return { lse, logp, ent, dlogits };
}

async function gpuAll(
  logits: Float32Array,
  targets: Uint32Array,
  dlogp: Float32Array,
  M: number,
  V: number,
) {
  const gpu = await getGpu();
  const gl = up(gpu, logits), gt = up(gpu, targets);
  const logp = zeros(gpu, M), lse = zeros(gpu, M), ent = zeros(gpu, M);
  const dl = zeros(gpu, M * V);
  const [a, b, c, d] = await run(gpu, (rec) => {
    tokenLogprobs(rec, gl, gt, logp, lse, M, V);
    entropy(rec, gl, lse, ent, M, V);
    tokenLogprobsBackward(rec, gl, lse, gt, up(gpu, dlogp), dl, M, V);
  }, [[logp, M], [lse, M], [ent, M], [dl, M * V]]);
  return { logp: a, lse: b, ent: c, dlogits: d };
}

Deno.test("tokenLogprobs, entropy and backward match an f64 reference", async () => {
  let seed = 100;
  for (const [M, V] of [[1, 1], [1, 5], [2, 257], [3, 300], [4, 1000]]) {
    const logits = randn(M * V, seed++, 3);
    const targets = randInts(M, V, seed++);
    const dlogp = randn(M, seed++);
    const g = await gpuAll(logits, targets, dlogp, M, V);
    const r = reference(logits, targets, dlogp, M, V);
    const s = `M=${M} V=${V}`;
    assertClose(g.lse, r.lse, 1e-5, 1e-5, `lse ${s}`);
    assertClose(g.logp, r.logp, 1e-5, 1e-5, `logp ${s}`);
    assertClose(g.ent, r.ent, 1e-5, 1e-4, `entropy ${s}`);
    assertClose(g.dlogits, r.dlogits, 1e-6, 1e-4, `dlogits ${s}`);
  }
});

Deno.test("tokenLogprobs rows are bit-identical alone and inside a batch", async () => {
  const M = 6, V = 777;
  const logits = randn(M * V, 7, 4), targets = randInts(M, V, 8), dlogp = randn(M, 9);
  const all = await gpuAll(logits, targets, dlogp, M, V);
  for (const m of [0, 3, 5]) {
    const one = await gpuAll(
      logits.slice(m * V, (m + 1) * V),
      targets.slice(m, m + 1),
      dlogp.slice(m, m + 1),
      1,
      V,
    );
    assert.equal(one.logp[0], all.logp[m]);
    assert.equal(one.lse[0], all.lse[m]);
    assert.equal(one.ent[0], all.ent[m]);
    assert.deepEqual(Array.from(one.dlogits), Array.from(all.dlogits.slice(m * V, (m + 1) * V)));
  }
});

Deno.test("tokenLogprobs gradient agrees with finite differences of sum(dlogp * logp)", async () => {
  const M = 3, V = 40;
  const logits = randn(M * V, 31, 2), targets = randInts(M, V, 32), dlogp = randn(M, 33);
  const { dlogits } = await gpuAll(logits, targets, dlogp, M, V);
  const probe = [0, targets[0], V + targets[1], 2 * V + 5, M * V - 1];
  const fd = await finiteDiff(logits, probe, 1e-2, async (l) => {
    const { logp } = await gpuAll(l, targets, dlogp, M, V);
    return dot64(logp, dlogp);
  });
  assertClose(probe.map((i) => dlogits[i]), fd, 1e-3, 1e-2, "dlogits vs finite differences");
});

Deno.test("an out-of-range target gives NaN, not a neighbour's logit", async () => {
  const V = 10;
  const { logp, lse } = await gpuAll(randn(2 * V, 41), new Uint32Array([V, 3]), randn(2, 42), 2, V);
  assert.ok(Number.isNaN(logp[0]));
  assert.ok(Number.isFinite(logp[1]) && Number.isFinite(lse[0]));
});

Deno.test("masked (-inf) logits are ignored by lse, entropy and the gradient", async () => {
  const V = 300;
  const logits = randn(V, 43, 2);
  for (let v = 0; v < V; v += 3) logits[v] = -Infinity;
  const targets = new Uint32Array([1]), dlogp = new Float32Array([1]);
  const g = await gpuAll(logits, targets, dlogp, 1, V);
  const kept = logits.filter(Number.isFinite);
  const r = reference(kept, targets, dlogp, 1, kept.length);
  assertClose(g.lse, r.lse, 1e-5, 1e-5, "lse");
  assertClose(g.ent, r.ent, 1e-5, 1e-4, "entropy");
  assert.ok(g.dlogits.every(Number.isFinite), "finite gradient");
  assert.ok(g.dlogits[0] === 0, "a masked logit gets no gradient");
});

Deno.test("tokenLogprobs handles a Llama-3-sized vocabulary row", async () => {
  const M = 2, V = 128256;
  const logits = randn(M * V, 44, 3), targets = randInts(M, V, 45), dlogp = randn(M, 46);
  const g = await gpuAll(logits, targets, dlogp, M, V);
  const r = reference(logits, targets, dlogp, M, V);
  assertClose(g.lse, r.lse, 1e-5, 1e-5, "lse");
  assertClose(g.logp, r.logp, 1e-5, 1e-5, "logp");
  assertClose(g.ent, r.ent, 1e-4, 1e-4, "entropy");
});
