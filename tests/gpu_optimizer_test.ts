import assert from "node:assert/strict";
import { getGpu } from "../gpu/device.ts";
import {
  adamw,
  adamwMulti,
  type AdamWOptions,
  clipScale,
  createNormOut,
  sumSquares,
  sumSquaresMulti,
  SumSquaresPlan,
} from "../gpu/optimizer.ts";
import { Recorder } from "../gpu/recorder.ts";
import { assertClose, randn } from "./helpers.ts";
import { assertSameBits, inBothStyles, run, up, zeros } from "./gpu_kernel_helpers.ts";

const sumSq = (a: ArrayLike<number>) => Array.from(a).reduce((s, x) => s + x * x, 0);

Deno.test("sumSquares and clipScale match f64 sums, deterministically", async () => {
  const gpu = await getGpu();
  const sizes = [1, 255, 256 * 1024 + 17, 1000];
  const xs = sizes.map((n, i) => randn(n, 500 + i));
  const bufs = xs.map((x) => up(gpu, x));
  const partials = zeros(gpu, sizes.length);
  const outs = [zeros(gpu, 2), zeros(gpu, 2), zeros(gpu, 2)];
  const once = () =>
    run(gpu, (rec) => {
      bufs.forEach((b, i) => sumSquares(rec, b, sizes[i], partials, i));
      clipScale(rec, partials, sizes.length, 1e9, outs[0]);
      clipScale(rec, partials, sizes.length, 10, outs[1]);
      clipScale(rec, partials, sizes.length, 0, outs[2]);
    }, [[partials, sizes.length], ...outs.map((o): [GPUBuffer, number] => [o, 2])]);
  const [p, big, small, none] = await once();
  assertClose(p, xs.map(sumSq), 1e-6, 1e-5, "per-tensor sums of squares");
  const norm = Math.sqrt(xs.map(sumSq).reduce((a, b) => a + b));
  assertClose([big[0], big[1]], [norm, 1], 1e-6, 1e-5, "no clipping needed");
  assertClose([small[0], small[1]], [norm, 10 / (norm + 1e-6)], 1e-6, 1e-5, "clipping");
  assertClose([none[0], none[1]], [norm, 1], 1e-6, 1e-5, "maxNorm <= 0 disables clipping");
  const again = await once();
  assert.deepEqual(Array.from(again[0]), Array.from(p), "bit-identical on a rerun");
  assert.throws(() => sumSquares(new Recorder(gpu), bufs[0], 1, partials, 4), /slot 4 is outside/);
});

/** f64 reference of one torch.optim.AdamW step. */
function refAdamw(
  p: Float64Array,
  g: ArrayLike<number>,
  m: Float64Array,
  v: Float64Array,
  o: AdamWOptions,
  scale: number,
) {
  const bc1 = 1 - o.beta1 ** o.step, bc2 = 1 - o.beta2 ** o.step;
  for (let i = 0; i < p.length; i++) {
    const gi = g[i] * scale;
    m[i] = o.beta1 * m[i] + (1 - o.beta1) * gi;
    v[i] = o.beta2 * v[i] + (1 - o.beta2) * gi * gi;
    p[i] *= 1 - o.lr * o.weightDecay;
    p[i] -= (o.lr / bc1) * m[i] / (Math.sqrt(v[i]) / Math.sqrt(bc2) + o.eps);
  }
}

Deno.test("clipped AdamW matches a TypeScript reference over several steps", async () => {
  const gpu = await getGpu();
  const sizes = [3, 700];
  const params = sizes.map((n, i) => randn(n, 600 + i));
  const gp = params.map((x) => up(gpu, x));
  const gm = sizes.map((n) => zeros(gpu, n)), gv = sizes.map((n) => zeros(gpu, n));
  const rp = params.map((x) => Float64Array.from(x));
  const rm = sizes.map((n) => new Float64Array(n)), rv = sizes.map((n) => new Float64Array(n));
  const partials = zeros(gpu, sizes.length), scaleBuf = zeros(gpu, 2);
  const maxNorm = 5;
  for (let step = 1; step <= 5; step++) {
    const grads = sizes.map((n, i) => randn(n, 700 + 10 * step + i, step));
    const gg = grads.map((g) => up(gpu, g));
    const opts = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step };
    const [scale, ...ps] = await run(gpu, (rec) => {
      gg.forEach((g, i) => sumSquares(rec, g, sizes[i], partials, i));
      clipScale(rec, partials, sizes.length, maxNorm, scaleBuf);
      gg.forEach((g, i) => adamw(rec, gp[i], g, gm[i], gv[i], sizes[i], opts, scaleBuf));
    }, [[scaleBuf, 2], ...gp.map((b, i): [GPUBuffer, number] => [b, sizes[i]])]);
    const norm = Math.sqrt(grads.map(sumSq).reduce((a, b) => a + b));
    const refScale = Math.min(1, maxNorm / (norm + 1e-6));
    assertClose([scale[1]], [refScale], 1e-7, 1e-5, `clip scale step ${step}`);
    if (step >= 2) assert.ok(refScale < 1, "the test must exercise clipping");
    sizes.forEach((_, i) => refAdamw(rp[i], grads[i], rm[i], rv[i], opts, refScale));
    ps.forEach((p, i) => assertClose(p, rp[i], 1e-6, 1e-5, `param ${i} step ${step}`));
  }
  assert.throws(
    () =>
      adamw(new Recorder(gpu), gp[0], gp[0], gm[0], gv[0], 3, {
        lr: 1,
        beta1: 0.9,
        beta2: 0.9,
        eps: 0,
        weightDecay: 0,
        step: 0,
      }, scaleBuf),
    /step must be an integer >= 1/,
  );
});

Deno.test("sumSquaresMulti gives each tensor sumSquares' bits; adamwMulti wants a uniform scale", async () => {
  const gpu = await getGpu();
  // More tensors than one dispatch takes, sizes around the workgroup and the 1024-group cap.
  const sizes = [1, 255, 256, 257, 256 * 1024 + 17, 1000, 3, 70001, 2, 513, 4096, 7, 300, 9, 1];
  const xs = sizes.map((n, i) => randn(n, 900 + i));
  const bufs = xs.map((x) => up(gpu, x));
  const plan = new SumSquaresPlan(gpu, sizes, "test");
  // Both kernel styles of the multi-tensor kernels against the per-tensor (workgroup) kernels.
  const styles = await inBothStyles(gpu, (g) => {
    const one = zeros(g, sizes.length), multi = zeros(g, sizes.length);
    return run(g, (rec) => {
      bufs.forEach((x, i) => sumSquares(rec, x, sizes[i], one, i));
      sumSquaresMulti(rec, plan, bufs, multi);
    }, [[one, sizes.length], [multi, sizes.length]]);
  });
  for (const [style, [a, b]] of Object.entries(styles)) {
    assertSameBits(b, a, `${style} multi vs per-tensor`, ["multi", "per-tensor"]);
    assertClose(b, xs.map(sumSq), 1e-6, 1e-5, `${style} multi sums of squares`);
  }
  const multi = zeros(gpu, sizes.length);
  assert.throws(() => sumSquaresMulti(new Recorder(gpu), plan, bufs.slice(1), multi), /14 grad/);
  const t = { param: bufs[0], grad: bufs[1], m: bufs[2], v: bufs[3], n: 1, weightDecay: 0 };
  const o = { lr: 1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0, step: 1 };
  assert.throws(() => adamwMulti(new Recorder(gpu), [t], o, zeros(gpu, 4)), /uniform-capable/);
  adamwMulti(new Recorder(gpu), [t], o, createNormOut(gpu));
  plan.destroy();
});
