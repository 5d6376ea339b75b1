/**
 * The `gpu-probe` experiment kind: "does my machine work". It gets the WebGPU device the engine
 * uses (with the limits it needs), records what it got, checks a WGSL matmul against a
 * TypeScript reference at a few shapes (ragged ones included) and times it.
 *
 * Deterministic outputs: metrics.jsonl (one line per shape: errors and pass/fail).
 * Run-specific: timings.jsonl (milliseconds and GFLOP/s), provenance (the adapter).
 *
 * @module
 */
import { z } from "zod";
import { getGpu } from "../../gpu/device.ts";
import { createBuffer, readF32, uploadBuffer } from "../../gpu/buffers.ts";
import { Recorder } from "../../gpu/recorder.ts";
import { defineKind, type RunContext } from "../experiment/kind.ts";
import { matmulErrors, probeMatmul, referenceMatmul } from "./probe_matmul.ts";

const dim = z.number().int().min(1).max(4096);
const shape = z.tuple([dim, dim, dim]);

/** gpu-probe parameters. */
export const GPU_PROBE_SCHEMA = z.strictObject({
  /** Shapes [m, k, n] checked against the reference; include ragged ones (not multiples of 16). */
  shapes: z.array(shape).min(1).default([[1, 1, 1], [7, 13, 5], [16, 16, 16], [33, 65, 17], [
    64,
    100,
    48,
  ]]),
  /** Largest allowed |gpu - reference| / sum_k |a_ik b_kj| (f32 rounding is ~1e-7 per term). */
  tolerance: z.number().positive().max(1).default(1e-5),
  /** The timed matmul. */
  timing: z.strictObject({
    shape: shape.default([256, 256, 256]),
    /** Untimed submissions first (pipeline compilation, caches). */
    warmup: z.number().int().min(0).default(1),
    /** Timed submissions. */
    repeats: z.number().int().min(1).default(5),
    /** Matmuls per submission. */
    iterations: z.number().int().min(1).default(2),
  }).prefault({}),
});

/** Parameters of one gpu-probe run. */
export type GpuProbeParams = z.output<typeof GPU_PROBE_SCHEMA>;

/** Uniform values in [-1, 1) from a seeded counter (mulberry32). */
export function uniformMatrix(count: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

async function checkShapes(ctx: RunContext, p: GpuProbeParams): Promise<string[]> {
  const gpu = await getGpu();
  const failures: string[] = [];
  for (const [idx, [m, k, n]] of p.shapes.entries()) {
    ctx.throwIfAborted();
    const a = uniformMatrix(m * k, ctx.seed * 1000 + idx * 2);
    const b = uniformMatrix(k * n, ctx.seed * 1000 + idx * 2 + 1);
    const ga = uploadBuffer(gpu, a, "probe.a"), gb = uploadBuffer(gpu, b, "probe.b");
    const gc = createBuffer(gpu, m * n * 4, "probe.c");
    const rec = new Recorder(gpu);
    probeMatmul(rec, ga, gb, gc, m, k, n);
    await rec.submit();
    const got = await readF32(gpu, gc, m * n);
    for (const buf of [ga, gb, gc]) buf.destroy();
    const err = matmulErrors(got, referenceMatmul(a, b, m, k, n));
    const pass = err.maxScaledError <= p.tolerance;
    await ctx.appendJsonl("metrics.jsonl", {
      check: "matmul",
      m,
      k,
      n,
      maxAbsError: err.maxAbsError,
      maxScaledError: err.maxScaledError,
      tolerance: p.tolerance,
      pass,
    }, { deterministic: true });
    ctx.log(
      `matmul ${m}x${k}x${n}: max abs error ${err.maxAbsError.toExponential(2)}, ` +
        `scaled ${err.maxScaledError.toExponential(2)} ${pass ? "ok" : "FAILED"}`,
    );
    if (!pass) {
      const at = err.worstIndex;
      failures.push(
        `${m}x${k}x${n} (scaled error ${err.maxScaledError} > ${p.tolerance} at row ` +
          `${Math.floor(at / n)}, column ${at % n})`,
      );
    }
    ctx.progress("checking matmul", idx + 1, p.shapes.length);
  }
  return failures;
}

async function timeMatmul(ctx: RunContext, p: GpuProbeParams): Promise<void> {
  const gpu = await getGpu();
  const [m, k, n] = p.timing.shape;
  const { warmup, repeats, iterations } = p.timing;
  const ga = uploadBuffer(gpu, uniformMatrix(m * k, ctx.seed + 1), "probe.a");
  const gb = uploadBuffer(gpu, uniformMatrix(k * n, ctx.seed + 2), "probe.b");
  const gc = createBuffer(gpu, m * n * 4, "probe.c");
  const times: number[] = [];
  for (let r = 0; r < warmup + repeats; r++) {
    ctx.throwIfAborted();
    const rec = new Recorder(gpu);
    for (let i = 0; i < iterations; i++) probeMatmul(rec, ga, gb, gc, m, k, n);
    const t0 = performance.now();
    await rec.submit();
    await gpu.device.queue.onSubmittedWorkDone();
    const ms = performance.now() - t0;
    if (r >= warmup) times.push(ms / iterations);
    ctx.progress("timing matmul", r + 1, warmup + repeats);
  }
  for (const buf of [ga, gb, gc]) buf.destroy();
  times.sort((x, y) => x - y);
  const median = times[Math.floor(times.length / 2)];
  const gflops = (2 * m * k * n) / (median * 1e6);
  await ctx.appendJsonl("timings.jsonl", {
    op: "matmul",
    m,
    k,
    n,
    iterations,
    msPerMatmul: times,
    medianMs: median,
    gflops,
  }, { deterministic: false });
  ctx.log(`matmul ${m}x${k}x${n}: median ${median.toFixed(3)} ms, ${gflops.toFixed(2)} GFLOP/s`);
}

/** The gpu-probe kind. */
export const gpuProbeKind = defineKind({
  kind: "gpu-probe",
  description: "checks and times a WGSL matmul on this machine's WebGPU adapter",
  schema: GPU_PROBE_SCHEMA,
  async run(ctx, params) {
    const gpu = await getGpu(); // throws GpuUnavailableError with an install hint
    ctx.recordGpu(gpu.info);
    ctx.log(
      `adapter: ${gpu.info.description || gpu.info.device || gpu.info.vendor || "unnamed"} ` +
        `(${gpu.info.backend}${gpu.info.isFallbackAdapter ? ", fallback" : ""}), ` +
        `f16 ${gpu.info.f16 ? "on" : "off"}`,
    );
    const failures = await checkShapes(ctx, params);
    if (failures.length > 0) {
      throw new Error(
        `the adapter's matmul differs from the TypeScript reference at ${failures.join(", ")}; ` +
          `try another backend (DENO_WEBGPU_BACKEND=vulkan or gl) or update the GPU driver`,
      );
    }
    await timeMatmul(ctx, params);
  },
});
