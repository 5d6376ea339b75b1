import assert from "node:assert/strict";
import { getGpu } from "../gpu/device.ts";
import { swiglu, swigluBackward } from "../gpu/swiglu.ts";
import { assertClose, randn } from "./helpers.ts";
import { dot64, finiteDiff, run, up, zeros } from "./gpu_kernel_helpers.ts";

const sig = (g: number) => 1 / (1 + Math.exp(-g));

async function gpuAll(gate: Float32Array, upv: Float32Array, dy: Float32Array) {
  const gpu = await getGpu();
  const n = gate.length;
  const gg = up(gpu, gate), gu = up(gpu, upv);
  const y = zeros(gpu, n), dg = zeros(gpu, n), du = zeros(gpu, n);
  const [a, b, c] = await run(gpu, (rec) => {
    swiglu(rec, gg, gu, y, n);
    swigluBackward(rec, up(gpu, dy), gg, gu, dg, du, n);
  }, [[y, n], [dg, n], [du, n]]);
  return { y: a, dgate: b, dup: c };
}

Deno.test("swiglu forward and backward match an f64 reference", async () => {
  let seed = 300;
  for (const n of [1, 255, 257, 1000]) {
    const gate = randn(n, seed++, 4), upv = randn(n, seed++), dy = randn(n, seed++);
    if (n > 2) gate.set([-100, 100]); // sigmoid saturation must stay finite
    const g = await gpuAll(gate, upv, dy);
    const ry = [...gate].map((x, i) => x * sig(x) * upv[i]);
    const rdg = [...gate].map((x, i) => dy[i] * upv[i] * sig(x) * (1 + x * (1 - sig(x))));
    const rdu = [...gate].map((x, i) => dy[i] * x * sig(x));
    assertClose(g.y, ry, 1e-6, 1e-5, `y n=${n}`);
    assertClose(g.dgate, rdg, 1e-6, 1e-5, `dgate n=${n}`);
    assertClose(g.dup, rdu, 1e-6, 1e-5, `dup n=${n}`);
  }
});

Deno.test("swiglu gradients agree with finite differences of sum(dy * y)", async () => {
  const n = 50;
  const gate = randn(n, 71, 2), upv = randn(n, 72), dy = randn(n, 73);
  const g = await gpuAll(gate, upv, dy);
  const probe = [0, 11, 27, n - 1];
  const fdg = await finiteDiff(
    gate,
    probe,
    1e-2,
    async (v) => dot64((await gpuAll(v, upv, dy)).y, dy),
  );
  const fdu = await finiteDiff(
    upv,
    probe,
    1e-2,
    async (v) => dot64((await gpuAll(gate, v, dy)).y, dy),
  );
  assertClose(probe.map((i) => g.dgate[i]), fdg, 1e-3, 1e-2, "dgate vs finite differences");
  assertClose(probe.map((i) => g.dup[i]), fdu, 1e-3, 1e-2, "dup vs finite differences");
});

Deno.test("swiglu rows are bit-identical alone and inside a batch", async () => {
  const rows = 4, D = 300;
  const gate = randn(rows * D, 81, 3), upv = randn(rows * D, 82), dy = randn(rows * D, 83);
  const all = await gpuAll(gate, upv, dy);
  const sl = (a: Float32Array) => Array.from(a.slice(2 * D, 3 * D));
  const one = await gpuAll(
    gate.slice(2 * D, 3 * D),
    upv.slice(2 * D, 3 * D),
    dy.slice(2 * D, 3 * D),
  );
  assert.deepEqual(Array.from(one.y), sl(all.y));
  assert.deepEqual(Array.from(one.dgate), sl(all.dgate));
  assert.deepEqual(Array.from(one.dup), sl(all.dup));
});
