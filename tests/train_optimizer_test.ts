import assert from "node:assert/strict";
import { getGpu, type Gpu } from "../gpu/device.ts";
import { readF32, uploadBuffer, writeBuffer } from "../gpu/buffers.ts";
import { axpy } from "../gpu/elementwise.ts";
import { Recorder } from "../gpu/recorder.ts";
import { AdamW, type AdamWConfig, DEFAULT_ADAMW } from "../lib/train/optimizer.ts";
import { adamw, clipScale, sumSquares, tensorsPerDispatch } from "../gpu/optimizer.ts";
import { expectedTensors } from "../lib/model/config.ts";
import { tinyTestConfig } from "../lib/model/random_model.ts";
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

/** The step AdamW recorded before the multi-tensor kernels (3 dispatches a tensor): the bit reference. */
function recordPerTensorStep(
  rec: Recorder,
  slots: { param: GPUBuffer; grad: GPUBuffer; m: GPUBuffer; v: GPUBuffer; shape: number[] }[],
  partials: GPUBuffer,
  normOut: GPUBuffer,
  cfg: AdamWConfig,
  lr: number,
  step: number,
): void {
  const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);
  slots.forEach((s, i) => sumSquares(rec, s.grad, numel(s.shape), partials, i));
  clipScale(rec, partials, slots.length, cfg.maxGradNorm, normOut);
  for (const s of slots) {
    const weightDecay = s.shape.length >= 2 ? cfg.weightDecay : 0;
    const { beta1, beta2, eps } = cfg;
    adamw(rec, s.param, s.grad, s.m, s.v, numel(s.shape), {
      lr,
      beta1,
      beta2,
      eps,
      weightDecay,
      step,
    }, normOut);
  }
}

function assertBitsEqual(a: Float32Array, b: Float32Array, what: string) {
  assert.equal(a.length, b.length, `${what}: lengths`);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) {
    if (ua[i] !== ub[i]) assert.fail(`${what}[${i}]: ${a[i]} vs ${b[i]} differ in bits`);
  }
}

/** Odd sizes on both sides of the 256-value workgroup and the 1024-group cap, 1-D and 2-D. */
const ODD_SHAPES = [
  [1],
  [3],
  [17, 15],
  [255],
  [256],
  [257],
  [33, 31],
  [1023],
  [513, 513], // 263169 values: 1024 groups, each striding over several workgroup spans
  [7],
  [70001],
  [2, 3],
  [300],
  [129, 3],
  [5],
  [64, 64],
  [11],
];

async function multiVsPerTensor(
  cfg: AdamWConfig,
  steps: number,
  gradScale: number,
  gpu: Gpu,
) {
  const names = ODD_SHAPES.map((_, k) => `p${String(k).padStart(2, "0")}`); // sorted = index order
  const numels = ODD_SHAPES.map((s) => s.reduce((a, b) => a * b, 1));
  const init = numels.map((n, k) => randn(n, 40 + k, 0.5));
  const params = names.map((name, k) => ({
    name,
    shape: ODD_SHAPES[k],
    buffer: uploadBuffer(gpu, init[k], name),
  }));
  const opt = new AdamW(gpu, params, cfg);
  const ref = names.map((_, k) => ({
    param: uploadBuffer(gpu, init[k], "ref param"),
    grad: uploadBuffer(gpu, new Float32Array(numels[k]), "ref grad"),
    m: uploadBuffer(gpu, new Float32Array(numels[k]), "ref m"),
    v: uploadBuffer(gpu, new Float32Array(numels[k]), "ref v"),
    shape: ODD_SHAPES[k],
  }));
  const partials = uploadBuffer(gpu, new Float32Array(names.length), "ref partials");
  const normOut = uploadBuffer(gpu, new Float32Array(2), "ref norm");
  const scales: number[] = [];
  for (let step = 1; step <= steps; step++) {
    const lr = 1e-2 / step;
    const rec = new Recorder(gpu);
    names.forEach((name, k) => {
      const g = randn(numels[k], 1000 * step + k, gradScale);
      writeBuffer(gpu, opt.grads.get(name)!, g);
      writeBuffer(gpu, ref[k].grad, g);
    });
    const report = opt.recordStep(rec, lr);
    recordPerTensorStep(rec, ref, partials, normOut, cfg, lr, step);
    const refNorm = rec.read(normOut, 0, 8);
    await rec.submit();
    const got = await report, want = new Float32Array(await refNorm);
    assert.ok(Object.is(Math.fround(got.gradNorm), want[0]), `grad norm at step ${step}`);
    assert.ok(Object.is(Math.fround(got.clipScale), want[1]), `clip scale at step ${step}`);
    scales.push(got.clipScale);
  }
  const state = await opt.readState();
  for (let k = 0; k < names.length; k++) {
    const n = numels[k];
    const p = await readF32(gpu, params[k].buffer, n);
    assertBitsEqual(p, await readF32(gpu, ref[k].param, n), `param ${names[k]}`);
    assertBitsEqual(state.get(names[k])!.m, await readF32(gpu, ref[k].m, n), `m ${names[k]}`);
    assertBitsEqual(state.get(names[k])!.v, await readF32(gpu, ref[k].v, n), `v ${names[k]}`);
  }
  opt.destroy();
  return scales;
}

Deno.test("AdamW's multi-tensor step gives the per-tensor kernels' bits, clipping active", async () => {
  const cfg = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, maxGradNorm: 1 };
  const scales = await multiVsPerTensor(cfg, 3, 0.5, await getGpu());
  assert.ok(scales.every((s) => s < 0.01), `clipped: ${scales}`);
});

Deno.test("AdamW's multi-tensor step gives the per-tensor kernels' bits, clipping inactive", async () => {
  const big = { beta1: 0.8, beta2: 0.999, eps: 1e-6, weightDecay: 0.01, maxGradNorm: 1e9 };
  assert.deepEqual(await multiVsPerTensor(big, 3, 0.01, await getGpu()), [1, 1, 1]);
  const off = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 0 };
  assert.deepEqual(await multiVsPerTensor(off, 2, 0.5, await getGpu()), [1, 1]);
});

Deno.test("AdamW's step records several tensors a dispatch for a 28-layer model", async () => {
  // The count depends on the tensor count (254 here, as Llama-3.2-3B), not on their sizes.
  const gpu = await getGpu();
  const c = tinyTestConfig({ numLayers: 28, tieWordEmbeddings: true });
  const shapes = [...expectedTensors(c)];
  assert.equal(shapes.length, 254);
  const params = shapes.map(([name, shape]) => ({
    name,
    shape,
    buffer: uploadBuffer(gpu, new Float32Array(shape.reduce((a, b) => a * b, 1)), name),
  }));
  const opt = new AdamW(gpu, params);
  const rec = new Recorder(gpu);
  const report = opt.recordStep(rec, 1e-3);
  const multi = rec.dispatchCount;
  await rec.submit();
  await report;
  const per = tensorsPerDispatch(gpu);
  assert.equal(multi, Math.ceil(254 / per.sumSquares) + 1 + 1 + Math.ceil(254 / per.adamw));
  // The per-tensor step it replaced: sumSquares (2) and adamw (1) per tensor, one clipScale.
  const old = new Recorder(gpu);
  const b = (n: number) => uploadBuffer(gpu, new Float32Array(n), "old");
  const slots = params.map((p) => {
    const n = p.shape.reduce((a, x) => a * x, 1);
    return { param: p.buffer, grad: b(n), m: b(n), v: b(n), shape: p.shape };
  });
  recordPerTensorStep(old, slots, b(254), b(2), DEFAULT_ADAMW, 1e-3, 1);
  assert.equal(old.dispatchCount, 763);
  console.log(
    `AdamW step dispatches, 254 tensors, maxStorageBuffersPerShaderStage ` +
      `${gpu.device.limits.maxStorageBuffersPerShaderStage}: ${multi} (per-tensor: ${old.dispatchCount})`,
  );
  opt.destroy();
});

/** A second device on a fresh adapter with `n` storage buffers per stage (null if not offered). */
async function deviceWithStorageBindings(n: number): Promise<Gpu | null> {
  const base = await getGpu();
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter || adapter.limits.maxStorageBuffersPerShaderStage < n) return null;
  const l = base.device.limits;
  const device = await adapter.requestDevice({
    requiredLimits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxStorageBuffersPerShaderStage: n,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
    },
  });
  return { ...base, adapter, device, lost: null, error: null };
}

Deno.test("AdamW's multi-tensor bits hold with more tensors a dispatch (32 storage bindings)", async () => {
  const gpu = await deviceWithStorageBindings(32);
  if (!gpu) return; // the adapter offers fewer
  assert.deepEqual(tensorsPerDispatch(gpu), { sumSquares: 15, adamw: 8 });
  const cfg = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, maxGradNorm: 1 };
  await multiVsPerTensor(cfg, 2, 0.5, gpu);
  // A 254-tensor step: ceil(254 / 15) + 1 + 1 + ceil(254 / 8) dispatches.
  const params = [...expectedTensors(tinyTestConfig({ numLayers: 28, tieWordEmbeddings: true }))]
    .map(([name, shape]) => ({
      name,
      shape,
      buffer: uploadBuffer(gpu, new Float32Array(shape.reduce((a, b) => a * b, 1)), name),
    }));
  const opt = new AdamW(gpu, params);
  const rec = new Recorder(gpu);
  const report = opt.recordStep(rec, 1e-3);
  assert.equal(rec.dispatchCount, 51);
  await rec.submit();
  await report;
  opt.destroy();
  gpu.device.destroy();
});
