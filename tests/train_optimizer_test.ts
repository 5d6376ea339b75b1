import assert from "node:assert/strict";
import { getGpu } from "../gpu/device.ts";
import { readF32, uploadBuffer } from "../gpu/buffers.ts";
import { axpy } from "../gpu/elementwise.ts";
import { Recorder } from "../gpu/recorder.ts";
import { AdamW, type AdamWConfig } from "../lib/train/optimizer.ts";
import { lrAt } from "../lib/train/schedule.ts";
import { assertClose, randn } from "./helpers.ts";

/** Plain TypeScript AdamW + global-norm clipping (PyTorch semantics), in f64. */
function referenceStep(
  params: Float64Array[],
  grads: Float32Array[],
  m: Float64Array[],
  v: Float64Array[],
  decays: boolean[],
  cfg: AdamWConfig,
  lr: number,
  step: number,
): { norm: number; scale: number } {
  let sq = 0;
  for (const g of grads) for (const x of g) sq += x * x;
  const norm = Math.sqrt(sq);
  const scale = cfg.maxGradNorm > 0 ? Math.min(1, cfg.maxGradNorm / (norm + 1e-6)) : 1;
  const bc1 = 1 - cfg.beta1 ** step, bc2 = 1 - cfg.beta2 ** step;
  params.forEach((p, k) => {
    const wd = decays[k] ? cfg.weightDecay : 0;
    for (let i = 0; i < p.length; i++) {
      const g = grads[k][i] * scale;
      p[i] -= lr * wd * p[i];
      m[k][i] = cfg.beta1 * m[k][i] + (1 - cfg.beta1) * g;
      v[k][i] = cfg.beta2 * v[k][i] + (1 - cfg.beta2) * g * g;
      p[i] -= (lr * (m[k][i] / bc1)) / (Math.sqrt(v[k][i] / bc2) + cfg.eps);
    }
  });
  return { norm, scale };
}

async function runSteps(cfg: AdamWConfig, steps: number, gradScale: number) {
  const gpu = await getGpu();
  const shapes = [[7, 5], [5], [3, 11], [300]];
  const init = shapes.map((s, k) => randn(s.reduce((a, b) => a * b), 10 + k, 0.5));
  const params = init.map((x, k) => ({
    name: `p${k}`,
    shape: shapes[k],
    buffer: uploadBuffer(gpu, x, `p${k}`),
  }));
  const opt = new AdamW(gpu, params, cfg);
  const ref = init.map((x) => Float64Array.from(x));
  const m = init.map((x) => new Float64Array(x.length));
  const v = init.map((x) => new Float64Array(x.length));
  const schedule = { kind: "cosine" as const, lr: 1e-2, warmupSteps: 1, totalSteps: steps };
  for (let step = 1; step <= steps; step++) {
    const grads = init.map((x, k) => randn(x.length, 100 * step + k, gradScale));
    // Two "micro-batches" accumulate into zeroed gradients (parts chosen so the sum is exact),
    // then the step runs in the same submission.
    const lr = lrAt(schedule, step);
    const rec = new Recorder(gpu);
    opt.zeroGrads(rec);
    const tmps: GPUBuffer[] = [];
    grads.forEach((g, k) => {
      for (const frac of [0.25, 0.75]) {
        const part = uploadBuffer(gpu, g.map((x) => x * frac), "part");
        tmps.push(part);
        axpy(rec, part, opt.grads.get(`p${k}`)!, g.length);
      }
    });
    const report = opt.recordStep(rec, lr);
    await rec.submit();
    tmps.forEach((t) => t.destroy());
    const got = await report;
    // The reference sees the same accumulated f32 sums the GPU saw.
    const summed = grads.map((g) => g.map((x) => Math.fround(x * 0.25) + Math.fround(x * 0.75)));
    const want = referenceStep(ref, summed, m, v, shapes.map((s) => s.length >= 2), cfg, lr, step);
    assertClose([got.gradNorm], [want.norm], 1e-6, 1e-5, `grad norm at step ${step}`);
    assertClose([got.clipScale], [want.scale], 1e-7, 1e-5, `clip scale at step ${step}`);
  }
  for (let k = 0; k < params.length; k++) {
    const p = await readF32(gpu, params[k].buffer, init[k].length);
    assertClose(p, ref[k], 1e-6, 1e-4, `param p${k} after ${steps} steps`);
  }
  const state = await opt.readState();
  assertClose(state.get("p2")!.m, m[2], 1e-7, 1e-4, "m of p2");
  assertClose(state.get("p2")!.v, v[2], 1e-9, 1e-4, "v of p2");
  assert.equal(opt.step, steps);
  opt.destroy();
}

Deno.test("AdamW with clipping matches the TypeScript reference over several steps", async () => {
  // Gradients of norm ~ 0.5*sqrt(428) ~ 10 get clipped to 1.
  await runSteps({ beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, maxGradNorm: 1 }, 5, 0.5);
});

Deno.test("AdamW without clipping (scale 1) matches the reference", async () => {
  await runSteps({ beta1: 0.8, beta2: 0.999, eps: 1e-6, weightDecay: 0, maxGradNorm: 0 }, 4, 0.01);
});

Deno.test("AdamW refuses duplicate names and short buffers", async () => {
  const gpu = await getGpu();
  const b = uploadBuffer(gpu, new Float32Array(4), "b");
  assert.throws(
    () =>
      new AdamW(gpu, [{ name: "a", shape: [4], buffer: b }, { name: "a", shape: [4], buffer: b }]),
    /given twice/,
  );
  assert.throws(() => new AdamW(gpu, [{ name: "a", shape: [400], buffer: b }]), /fewer than 400/);
});
