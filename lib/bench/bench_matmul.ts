/**
 * The `bench-matmul` experiment kind: the engine's own matmul dispatchers (gpu/matmul.ts, as
 * lib/model calls them) timed over the manifest's shapes, as GFLOP/s and GB/s and as fractions
 * of the adapter's f32 peak and memory bandwidth (lib/bench/adapter_peaks.ts), each beside the
 * 64x64 tiled kernel on the same shape (the engine's only kernel before issue 15), so one run
 * gives before/after ratios on one machine.
 *
 * It also checks the bits the engine relies on (gpu/matmul.ts): the first rows of a product at
 * the largest `bitCheck.rows` equal the same rows computed alone at each smaller row count (so
 * decode at M = 1 or 32 gives the training pass's bits), a rerun gives the same bits, and the
 * engine's kernels give the 64x64 tiled kernel's bits (so existing results stay reproducible). The
 * check results are deterministic (bits.json); a mismatch fails the run after the files are
 * written. Timings are run-specific (bench.json, timings.jsonl).
 *
 * @module
 */
import { z } from "zod";
import { getGpu, type Gpu } from "../../gpu/device.ts";
import { createBuffer } from "../../gpu/buffers.ts";
import { Recorder } from "../../gpu/recorder.ts";
import { fillNormal } from "../../gpu/init.ts";
import { packBf16Gpu, packedBf16Bytes } from "../../gpu/bf16.ts";
import {
  matmul,
  matmulBf16W,
  matmulGradInput,
  matmulGradInputTiled,
  matmulGradWeight,
  matmulGradWeightTiled,
  matmulTiled,
} from "../../gpu/matmul.ts";
import { defineKind, type RunContext } from "../experiment/kind.ts";
import {
  type AdapterPeaks,
  adapterPeaks,
  PeaksField,
  throughputRows,
  type TimedThroughput,
  timedThroughput,
} from "./adapter_peaks.ts";
import { type BenchRow, timePerOp } from "./gpu_timing.ts";

/** The products lib/model dispatches. Every op does 2·M·K·N flops. */
const OPS = ["forward", "forwardBf16", "gradInput", "gradInputBf16", "gradWeight"] as const;
type Op = (typeof OPS)[number];

/** Which implementation to time: the engine's dispatcher, or the 64x64 tiled kernel. */
const KERNELS = ["engine", "tiled"] as const;
type KernelVariant = (typeof KERNELS)[number];

const Shape = z.strictObject({
  /** A label for the table, e.g. "3B.gate_proj". */
  name: z.string().min(1),
  /**
   * forward: y[M,N] = x[M,K]·w[N,K]ᵀ; forwardBf16: the same with packed BF16 w; gradInput:
   * dx[M,K] = dy[M,N]·w[N,K]; gradInputBf16: the same with packed BF16 w (precision bf16
   * training); gradWeight: dw[N,K] = dy[M,N]ᵀ·x[M,K].
   */
  op: z.enum(OPS),
  M: z.number().int().positive(),
  K: z.number().int().positive(),
  N: z.number().int().positive(),
});

/** The default shapes: 4096³, Llama-3.2-3B training rows (4 x 800 tokens), decode M = 1, 8, 32. */
const DEFAULT_SHAPES: z.input<typeof Shape>[] = [
  ...OPS.map((op) => ({ name: "sq4096", op, M: 4096, K: 4096, N: 4096 })),
  { name: "3B.q_proj", op: "forward", M: 3200, K: 3072, N: 3072 },
  { name: "3B.k_proj", op: "forward", M: 3200, K: 3072, N: 1024 },
  { name: "3B.gate_proj", op: "forward", M: 3200, K: 3072, N: 8192 },
  { name: "3B.down_proj", op: "forward", M: 3200, K: 8192, N: 3072 },
  { name: "3B.gate_proj", op: "gradInput", M: 3200, K: 3072, N: 8192 },
  { name: "3B.gate_proj", op: "gradInputBf16", M: 3200, K: 3072, N: 8192 },
  { name: "3B.gate_proj", op: "gradWeight", M: 3200, K: 3072, N: 8192 },
  { name: "3B.lm_head_chunk", op: "forward", M: 523, K: 3072, N: 128256 },
  ...[1, 8, 32].flatMap((M) => [
    { name: "decode.gate_proj", op: "forward" as const, M, K: 3072, N: 8192 },
    { name: "decode.gate_proj", op: "forwardBf16" as const, M, K: 3072, N: 8192 },
    { name: "decode.down_proj", op: "forward" as const, M, K: 8192, N: 3072 },
    { name: "decode.lm_head", op: "forward" as const, M, K: 3072, N: 128256 },
  ]),
];

/** Parameters of `bench-matmul`. */
export const BenchMatmulSchema = z.strictObject({
  /** Products to time. */
  shapes: z.array(Shape).min(1).default(DEFAULT_SHAPES),
  /** Implementations to time on each shape ("tiled": the 64x64 kernel, the "before"). */
  kernels: z.array(z.enum(KERNELS)).min(1).default(["engine", "tiled"]),
  /** Wall time a timed submission aims at, in ms (more ops per submission for short ops). */
  targetMs: z.number().positive().default(200),
  /** Timed submissions per case and kernel, alternating kernels; the fastest is reported. */
  repeats: z.number().int().positive().default(5),
  /** Row-invariance check: rows of a [K] x [N] product at each count vs the largest count. */
  bitCheck: z.strictObject({
    K: z.number().int().positive().default(3072),
    N: z.number().int().positive().default(256),
    rows: z.array(z.number().int().positive()).min(2).default([1, 32, 3200]),
  }).prefault({}),
  /** Peaks to use instead of the table of known adapters. */
  peaks: PeaksField,
});

/** Parsed `bench-matmul` parameters. */
export type BenchMatmulParams = z.output<typeof BenchMatmulSchema>;

/** One timed case of bench.json. */
export interface MatmulCase extends TimedThroughput {
  name: string;
  op: Op;
  M: number;
  K: number;
  N: number;
  kernel: KernelVariant;
}

/** One row-invariance check of bits.json. */
export interface BitCheck {
  op: "forward" | "forwardBf16" | "gradInput" | "gradInputBf16";
  K: number;
  N: number;
  /** Rows compared at each count: mismatching f32 words against the largest count. */
  rows: { M: number; mismatches: number }[];
  /** Mismatching words between two runs at the largest count. */
  rerunMismatches: number;
  /** Mismatching words between the engine and the 64x64 tiled kernel at the largest count. */
  tiledKernelMismatches: number;
}

/** Bytes one op moves at least: both operands once and the output once. */
function opBytes(op: Op, M: number, K: number, N: number): number {
  const w = op === "forwardBf16" || op === "gradInputBf16" ? 2 : 4;
  return op === "gradWeight" ? 4 * (M * N + M * K + N * K) : 4 * (M * K + M * N) + w * N * K;
}

/** A buffer of n N(0, std) values made on the GPU. */
function normalBuffer(
  gpu: Gpu,
  rec: Recorder,
  n: number,
  seed: number,
  std: number,
  label: string,
) {
  const b = createBuffer(gpu, n * 4, label);
  fillNormal(rec, b, n, seed, std);
  return b;
}

/** Operands of one product, made on the GPU; `record` adds one op to a recorder. */
async function operands(gpu: Gpu, op: Op, M: number, K: number, N: number, variant: KernelVariant) {
  const rec = new Recorder(gpu);
  const owned: GPUBuffer[] = [];
  const own = (b: GPUBuffer) => (owned.push(b), b);
  let record: (r: Recorder) => void;
  if (op === "forward" || op === "forwardBf16") {
    const x = own(normalBuffer(gpu, rec, M * K, 1, 1, "x"));
    let w = own(normalBuffer(gpu, rec, N * K, 2, 0.02, "w"));
    if (op === "forwardBf16") {
      const packed = own(createBuffer(gpu, packedBf16Bytes(N * K), "wBf16"));
      packBf16Gpu(rec, w, packed, N * K);
      w = packed;
    }
    const y = own(createBuffer(gpu, M * N * 4, "y"));
    const format = op === "forwardBf16" ? "bf16" : "f32";
    record = variant === "tiled"
      ? (r) => matmulTiled(r, x, w, y, M, K, N, false, format)
      : format === "bf16"
      ? (r) => matmulBf16W(r, x, w, y, M, K, N)
      : (r) => matmul(r, x, w, y, M, K, N);
  } else if (op === "gradInput" || op === "gradInputBf16") {
    const dy = own(normalBuffer(gpu, rec, M * N, 3, 1, "dy"));
    let w = own(normalBuffer(gpu, rec, N * K, 2, 0.02, "w"));
    const format = op === "gradInputBf16" ? "bf16" : "f32";
    if (format === "bf16") {
      const packed = own(createBuffer(gpu, packedBf16Bytes(N * K), "wBf16"));
      packBf16Gpu(rec, w, packed, N * K);
      w = packed;
    }
    const dx = own(createBuffer(gpu, M * K * 4, "dx"));
    const f = variant === "tiled" ? matmulGradInputTiled : matmulGradInput;
    record = (r) => f(r, dy, w, dx, M, K, N, false, format);
  } else {
    const dy = own(normalBuffer(gpu, rec, M * N, 3, 1, "dy"));
    const x = own(normalBuffer(gpu, rec, M * K, 1, 1, "x"));
    const dw = own(createBuffer(gpu, N * K * 4, "dw"));
    const f = variant === "tiled" ? matmulGradWeightTiled : matmulGradWeight;
    record = (r) => f(r, dy, x, dw, M, K, N);
  }
  await rec.submit();
  return { record, destroy: () => owned.forEach((b) => b.destroy()) };
}

/** Runs the row-invariance and rerun checks of one op. */
async function bitCheck(
  gpu: Gpu,
  op: BitCheck["op"],
  K: number,
  N: number,
  rows: number[],
): Promise<BitCheck> {
  const counts = [...new Set(rows)].sort((a, b) => a - b);
  const big = counts[counts.length - 1];
  const rec = new Recorder(gpu);
  // forward: x [big, K] times w [N, K]; gradInput: dy [big, N] times w [N, K] (rows of dx).
  const grad = op === "gradInput" || op === "gradInputBf16";
  const bf16 = op === "forwardBf16" || op === "gradInputBf16";
  const inner = grad ? N : K, outCols = grad ? K : N;
  const a = normalBuffer(gpu, rec, big * inner, 11, 1, "bits.a");
  let w = normalBuffer(gpu, rec, N * K, 12, 0.02, "bits.w");
  const owned = [a, w];
  if (bf16) {
    const packed = createBuffer(gpu, packedBf16Bytes(N * K), "bits.wBf16");
    packBf16Gpu(rec, w, packed, N * K);
    owned.push(w = packed);
  }
  const product = (r: Recorder, y: GPUBuffer, m: number) =>
    op === "forward"
      ? matmul(r, a, w, y, m, K, N)
      : op === "forwardBf16"
      ? matmulBf16W(r, a, w, y, m, K, N)
      : matmulGradInput(r, a, w, y, m, K, N, false, bf16 ? "bf16" : "f32");
  const outs = counts.map((m) => createBuffer(gpu, m * outCols * 4, `bits.y${m}`));
  const again = createBuffer(gpu, big * outCols * 4, "bits.again");
  const tiled = createBuffer(gpu, big * outCols * 4, "bits.tiled");
  owned.push(...outs, again, tiled);
  counts.forEach((m, i) => product(rec, outs[i], m));
  product(rec, again, big);
  // The 64x64 tiled kernel, the engine's only kernel before issue 15, on the same product.
  const format = bf16 ? "bf16" : "f32";
  if (grad) matmulGradInputTiled(rec, a, w, tiled, big, K, N, false, format);
  else matmulTiled(rec, a, w, tiled, big, K, N, false, format);
  const reads = [...outs, again, tiled].map((b) => rec.read(b));
  await rec.submit();
  const got = (await Promise.all(reads)).map((ab) => new Uint32Array(ab));
  owned.forEach((b) => b.destroy());
  const ref = got[counts.length - 1];
  const diff = (x: Uint32Array, n: number) => {
    let d = 0;
    for (let i = 0; i < n; i++) if (x[i] !== ref[i]) d++;
    return d;
  };
  return {
    op,
    K,
    N,
    rows: counts.slice(0, -1).map((m, i) => ({ M: m, mismatches: diff(got[i], m * outCols) })),
    rerunMismatches: diff(got[counts.length], big * outCols),
    tiledKernelMismatches: diff(got[counts.length + 1], big * outCols),
  };
}

/** What bench-matmul writes to bench.json. */
export interface BenchMatmulResult {
  adapter: { description: string; device: string; kernels: string };
  peaks: AdapterPeaks;
  cases: MatmulCase[];
  /** Per shape: tiled ms / engine ms (> 1: the engine is faster than the 64x64 tile). */
  engineSpeedup: { name: string; op: Op; M: number; K: number; N: number; ratio: number }[];
  table: BenchRow[];
}

/** Times every case and runs the bit checks (exported for tests). */
export async function benchMatmul(
  gpu: Gpu,
  p: BenchMatmulParams,
  onCase?: (c: MatmulCase) => Promise<void>,
): Promise<{ result: BenchMatmulResult; bits: BitCheck[] }> {
  const peaks = adapterPeaks(gpu.info, p.peaks);
  const cases: MatmulCase[] = [];
  for (const s of p.shapes) {
    const ops = [];
    try {
      for (const kernel of p.kernels) ops.push(await operands(gpu, s.op, s.M, s.K, s.N, kernel));
      const times = await timePerOp(gpu, ops.map((o) => o.record), {
        targetMs: p.targetMs,
        repeats: p.repeats,
      });
      for (const [i, kernel] of p.kernels.entries()) {
        const c: MatmulCase = {
          ...s,
          kernel,
          ...timedThroughput(times[i], 2 * s.M * s.K * s.N, opBytes(s.op, s.M, s.K, s.N), peaks),
        };
        cases.push(c);
        await onCase?.(c);
      }
    } finally {
      ops.forEach((o) => o.destroy());
    }
  }
  const engineSpeedup = p.shapes.flatMap((s) => {
    const same = (c: MatmulCase) =>
      c.name === s.name && c.op === s.op && c.M === s.M && c.K === s.K && c.N === s.N;
    const e = cases.find((c) => same(c) && c.kernel === "engine");
    const t = cases.find((c) => same(c) && c.kernel === "tiled");
    return e && t ? [{ ...s, ratio: t.msPerOp / e.msPerOp }] : [];
  });
  const table: BenchRow[] = cases.flatMap((c) => {
    const label = `${c.name} ${c.op} M=${c.M} K=${c.K} N=${c.N} (${c.kernel})`;
    return throughputRows(label, c, peaks);
  });
  const bits: BitCheck[] = [];
  for (const op of ["forward", "forwardBf16", "gradInput", "gradInputBf16"] as const) {
    bits.push(await bitCheck(gpu, op, p.bitCheck.K, p.bitCheck.N, p.bitCheck.rows));
  }
  const i = gpu.info;
  return {
    result: {
      adapter: { description: i.description, device: i.device, kernels: i.kernels },
      peaks,
      cases,
      engineSpeedup,
      table,
    },
    bits,
  };
}

async function run(ctx: RunContext, p: BenchMatmulParams): Promise<void> {
  const gpu = await getGpu();
  ctx.recordGpu(gpu.info);
  const { result, bits } = await benchMatmul(gpu, p, async (c) => {
    ctx.log(
      `${c.name} ${c.op} M=${c.M} K=${c.K} N=${c.N} ${c.kernel}: ${c.msPerOp.toFixed(3)} ms, ` +
        `${c.gflops.toFixed(1)} GFLOP/s, ${c.gbps.toFixed(1)} GB/s`,
    );
    await ctx.appendJsonl("timings.jsonl", c, { deterministic: false });
  });
  for (const s of result.engineSpeedup) {
    ctx.log(`${s.name} ${s.op} M=${s.M}: engine ${s.ratio.toFixed(2)}x the 64x64 tiled kernel`);
  }
  await ctx.writeFile("bench.json", JSON.stringify(result, null, 2) + "\n", {
    deterministic: false,
  });
  await ctx.writeFile("bits.json", JSON.stringify({ checks: bits }, null, 2) + "\n", {
    deterministic: true,
  });
  const bad = bits.filter((b) =>
    b.rerunMismatches > 0 || b.tiledKernelMismatches > 0 || b.rows.some((r) => r.mismatches > 0)
  );
  if (bad.length > 0) {
    throw new Error(
      `bit checks failed (bits.json): ${
        bad.map((b) =>
          `${b.op}: ${JSON.stringify(b.rows)}, rerun ${b.rerunMismatches}, vs the tiled kernel ` +
          `${b.tiledKernelMismatches}`
        ).join("; ")
      }`,
    );
  }
}

/** The `bench-matmul` experiment kind. */
export const benchMatmulKind = defineKind({
  kind: "bench-matmul",
  description: "matmul GFLOP/s and GB/s as fractions of the adapter's peaks, plus bit checks",
  schema: BenchMatmulSchema,
  run,
});
