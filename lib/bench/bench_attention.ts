/**
 * The `bench-attention` experiment kind: the attention kernels (gpu/attention.ts) timed over the
 * manifest's shapes in three passes, each kernel beside the one it replaced, so one run gives
 * before/after ratios on one machine:
 * - "prefill": the forward over every position of B sequences of S tokens (training layout);
 * - "decode": the forward of one row per sequence at position S-1 over a cache of S keys;
 * - "backward": dq, dk, dv in the training layout (the delta kernel included).
 * Kernels: "blocked" (the query-/key-blocked workgroup kernels, gpu/attention_blocked.ts and
 * gpu/attention_backward_blocked.ts), "rowwise" (the per-(row, head) workgroup kernels before
 * them) and optionally "serial" (the engine's choice on a CPU adapter, gpu/serial.ts).
 *
 * It also counts, per shape, the f32 words where the blocked kernels differ from the row-wise
 * ones and a rerun differs from the first run (bits.json, deterministic); any mismatch fails the
 * run after the files are written. Timings are run-specific (bench.json, timings.jsonl).
 *
 * @module
 */
import { z } from "zod";
import { getGpu, type Gpu, type KernelStyle } from "../../gpu/device.ts";
import { createBuffer } from "../../gpu/buffers.ts";
import { Recorder } from "../../gpu/recorder.ts";
import { fillNormal } from "../../gpu/init.ts";
import { attention, attentionBackward, type AttentionVariant } from "../../gpu/attention.ts";
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

const PASSES = ["prefill", "decode", "backward"] as const;
type Pass = (typeof PASSES)[number];

const KERNELS = ["blocked", "rowwise", "serial"] as const;
type KernelVariant = (typeof KERNELS)[number];

const Shape = z.strictObject({
  /** A label for the table, e.g. "3B". */
  name: z.string().min(1),
  pass: z.enum(PASSES),
  /** Sequences. */
  B: z.number().int().positive(),
  /** Tokens per sequence (prefill, backward) or keys in the cache (decode). */
  S: z.number().int().positive(),
  nHeads: z.number().int().positive(),
  nKv: z.number().int().positive(),
  hd: z.number().int().positive().max(256),
  /** Kernels to time on this shape, instead of the manifest's `kernels`. */
  kernels: z.array(z.enum(KERNELS)).min(1).optional(),
});
type ShapeSpec = z.output<typeof Shape>;
/** A shape without its kernel list: what bench.json and bits.json record per case. */
type ShapeDims = Omit<ShapeSpec, "kernels">;

/** The default shapes: Llama-3.2-3B attention (24 heads over 8 kv heads, hd 128). */
const DEFAULT_SHAPES: z.input<typeof Shape>[] = [
  { name: "3B", pass: "prefill", B: 4, S: 800, nHeads: 24, nKv: 8, hd: 128 },
  { name: "3B", pass: "backward", B: 4, S: 800, nHeads: 24, nKv: 8, hd: 128 },
  ...[1, 32].map((B) => ({
    name: "3B",
    pass: "decode" as const,
    B,
    S: 1024,
    nHeads: 24,
    nKv: 8,
    hd: 128,
  })),
];

/** Parameters of `bench-attention`. */
export const BenchAttentionSchema = z.strictObject({
  /** Passes to time. */
  shapes: z.array(Shape).min(1).default(DEFAULT_SHAPES),
  /** Kernels to time on each shape ("rowwise": the kernels before the blocked ones). */
  kernels: z.array(z.enum(KERNELS)).min(1).default(["blocked", "rowwise"]),
  /** Wall time a timed submission aims at, in ms. */
  targetMs: z.number().positive().default(200),
  /** Timed submissions per case and kernel, alternating kernels; the fastest is reported. */
  repeats: z.number().int().positive().default(5),
  /** Peaks to use instead of the table of known adapters. */
  peaks: PeaksField,
});

/** Parsed `bench-attention` parameters. */
export type BenchAttentionParams = z.output<typeof BenchAttentionSchema>;

/** One timed case of bench.json. */
export interface AttentionCase extends ShapeDims, TimedThroughput {
  kernel: KernelVariant;
}

/** One shape's bit check of bits.json. */
export interface AttentionBitCheck extends ShapeDims {
  /** f32 words of the outputs (out and lse, or dq, dk, dv) compared. */
  words: number;
  /** Words where the blocked kernels differ from the row-wise ones. */
  rowwiseMismatches: number;
  /** Words where a second blocked run differs from the first. */
  rerunMismatches: number;
}

/** Query rows and (row, head, visible key) triples of a pass. */
function sizes(s: ShapeSpec): { M: number; pairs: number } {
  if (s.pass === "decode") return { M: s.B, pairs: s.B * s.nHeads * s.S };
  return { M: s.B * s.S, pairs: s.B * s.nHeads * (s.S * (s.S + 1)) / 2 };
}

/** Flops of one op: q·k and p·v per visible key (forward); q·k, dout·v and three sums (backward). */
function flops(s: ShapeSpec): number {
  return (s.pass === "backward" ? 10 : 4) * s.hd * sizes(s).pairs;
}

/** Bytes one op moves at least. */
function bytes(s: ShapeSpec): number {
  const { M } = sizes(s);
  const qRow = s.nHeads * s.hd, kv = 2 * s.B * s.S * s.nKv * s.hd;
  // forward: q, k, v in; out, lse out. backward: q, k, v, out, lse, dout in; dq, dk, dv out.
  return 4 *
    (s.pass === "backward"
      ? 3 * M * qRow + M * s.nHeads + 2 * kv + M * qRow
      : 2 * M * qRow + kv + M * s.nHeads);
}

/** A pass's buffers, made on the GPU, and a function recording one op with a given kernel. */
async function operands(gpu: Gpu, s: ShapeSpec) {
  const { B, S, nHeads, nKv, hd } = s;
  const { M } = sizes(s);
  const rec = new Recorder(gpu);
  const owned: GPUBuffer[] = [];
  const buf = (n: number, label: string, seed?: number) => {
    const b = createBuffer(gpu, n * 4, label);
    owned.push(b);
    if (seed !== undefined) fillNormal(rec, b, n, seed, 1);
    return b;
  };
  const q = buf(M * nHeads * hd, "q", 1), kc = buf(B * S * nKv * hd, "kc", 2);
  const vc = buf(B * S * nKv * hd, "vc", 3), dout = buf(M * nHeads * hd, "dout", 4);
  const out = buf(M * nHeads * hd, "out"), lse = buf(M * nHeads, "lse");
  const dq = buf(M * nHeads * hd, "dq"), dk = buf(B * S * nKv * hd, "dk");
  const dv = buf(B * S * nKv * hd, "dv");
  const decode = s.pass === "decode";
  const seq = Uint32Array.from({ length: M }, (_, m) => decode ? m : Math.floor(m / S));
  const pos = Uint32Array.from({ length: M }, (_, m) => decode ? S - 1 : m % S);
  const seqB = createBuffer(gpu, M * 4, "seq"), posB = createBuffer(gpu, M * 4, "pos");
  owned.push(seqB, posB);
  gpu.device.queue.writeBuffer(seqB, 0, seq);
  gpu.device.queue.writeBuffer(posB, 0, pos);
  const scale = 1 / Math.sqrt(hd);
  // The backward reads the forward's out and lse: computed once here.
  if (s.pass === "backward") {
    attention(rec, q, kc, vc, seqB, posB, out, lse, M, nHeads, nKv, hd, S, scale, "rowwise");
  }
  await rec.submit();
  const record = (r: Recorder, kernel: KernelVariant) => {
    const own = gpu.info.kernels;
    gpu.info.kernels = kernel === "serial" ? "serial" : "workgroup";
    const variant: AttentionVariant = kernel === "rowwise" ? "rowwise" : "auto";
    try {
      if (s.pass === "backward") {
        attentionBackward(
          r,
          q,
          kc,
          vc,
          out,
          lse,
          dout,
          dq,
          dk,
          dv,
          B,
          S,
          nHeads,
          nKv,
          hd,
          scale,
          variant,
        );
      } else {
        attention(r, q, kc, vc, seqB, posB, out, lse, M, nHeads, nKv, hd, S, scale, variant);
      }
    } finally {
      gpu.info.kernels = own;
    }
  };
  const outputs: [GPUBuffer, number][] = s.pass === "backward"
    ? [[dq, M * nHeads * hd], [dk, B * S * nKv * hd], [dv, B * S * nKv * hd]]
    : [[out, M * nHeads * hd], [lse, M * nHeads]];
  return { record, outputs, destroy: () => owned.forEach((b) => b.destroy()) };
}

/** Runs one op with `kernel` and reads its outputs back as words. */
async function outputsOf(
  gpu: Gpu,
  o: Awaited<ReturnType<typeof operands>>,
  kernel: KernelVariant,
): Promise<Uint32Array[]> {
  const rec = new Recorder(gpu);
  o.record(rec, kernel);
  const reads = o.outputs.map(([b, n]) => rec.read(b, 0, n * 4));
  await rec.submit();
  return (await Promise.all(reads)).map((ab) => new Uint32Array(ab));
}

function mismatches(a: Uint32Array[], b: Uint32Array[]): number {
  let n = 0;
  a.forEach((x, i) => {
    for (let w = 0; w < x.length; w++) if (x[w] !== b[i][w]) n++;
  });
  return n;
}

/** What bench-attention writes to bench.json. */
export interface BenchAttentionResult {
  adapter: { description: string; device: string; kernels: KernelStyle };
  peaks: AdapterPeaks;
  cases: AttentionCase[];
  /** Per shape: row-wise ms / blocked ms (> 1: the blocked kernels are faster). */
  blockedSpeedup: (ShapeDims & { ratio: number })[];
  table: BenchRow[];
}

/** Times every case and runs the bit checks (exported for tests). */
export async function benchAttention(
  gpu: Gpu,
  p: BenchAttentionParams,
  onCase?: (c: AttentionCase) => Promise<void>,
): Promise<{ result: BenchAttentionResult; bits: AttentionBitCheck[] }> {
  const peaks = adapterPeaks(gpu.info, p.peaks);
  const cases: AttentionCase[] = [];
  const bits: AttentionBitCheck[] = [];
  for (const s of p.shapes) {
    if (s.nHeads % s.nKv !== 0) {
      throw new Error(`bench-attention: shape ${s.name}: nHeads ${s.nHeads} % nKv ${s.nKv} != 0`);
    }
    const o = await operands(gpu, s);
    try {
      const first = await outputsOf(gpu, o, "blocked");
      const again = await outputsOf(gpu, o, "blocked");
      const before = await outputsOf(gpu, o, "rowwise");
      const { kernels: _, ...shape } = s;
      bits.push({
        ...shape,
        words: first.reduce((a, x) => a + x.length, 0),
        rowwiseMismatches: mismatches(first, before),
        rerunMismatches: mismatches(first, again),
      });
      const kernels = s.kernels ?? p.kernels;
      const times = await timePerOp(gpu, kernels.map((k) => (r: Recorder) => o.record(r, k)), {
        targetMs: p.targetMs,
        repeats: p.repeats,
      });
      for (const [i, kernel] of kernels.entries()) {
        const c: AttentionCase = {
          ...shape,
          kernel,
          ...timedThroughput(times[i], flops(s), bytes(s), peaks),
        };
        cases.push(c);
        await onCase?.(c);
      }
    } finally {
      o.destroy();
    }
  }
  const blockedSpeedup = p.shapes.flatMap((s) => {
    const of = (k: KernelVariant) => cases.find((c) => c.kernel === k && sameShape(c, s));
    const b = of("blocked"), r = of("rowwise");
    const { kernels: _, ...shape } = s;
    return b && r ? [{ ...shape, ratio: r.msPerOp / b.msPerOp }] : [];
  });
  const table: BenchRow[] = cases.flatMap((c) => {
    const label = `${c.name} ${c.pass} B=${c.B} S=${c.S} heads ${c.nHeads}/${c.nKv} hd=${c.hd} ` +
      `(${c.kernel})`;
    return throughputRows(label, c, peaks);
  });
  const i = gpu.info;
  return {
    result: {
      adapter: { description: i.description, device: i.device, kernels: i.kernels },
      peaks,
      cases,
      blockedSpeedup,
      table,
    },
    bits,
  };
}

const sameShape = (a: ShapeDims, b: ShapeDims) =>
  a.name === b.name && a.pass === b.pass && a.B === b.B && a.S === b.S &&
  a.nHeads === b.nHeads && a.nKv === b.nKv && a.hd === b.hd;

async function run(ctx: RunContext, p: BenchAttentionParams): Promise<void> {
  const gpu = await getGpu();
  ctx.recordGpu(gpu.info);
  const { result, bits } = await benchAttention(gpu, p, async (c) => {
    ctx.log(
      `${c.name} ${c.pass} B=${c.B} S=${c.S} heads ${c.nHeads}/${c.nKv} hd=${c.hd} ${c.kernel}: ` +
        `${c.msPerOp.toFixed(3)} ms, ${c.gflops.toFixed(2)} GFLOP/s, ${c.gbps.toFixed(2)} GB/s`,
    );
    await ctx.appendJsonl("timings.jsonl", c, { deterministic: false });
  });
  for (const s of result.blockedSpeedup) {
    ctx.log(`${s.name} ${s.pass} B=${s.B} S=${s.S}: blocked ${s.ratio.toFixed(2)}x row-wise`);
  }
  await ctx.writeFile("bench.json", JSON.stringify(result, null, 2) + "\n", {
    deterministic: false,
  });
  await ctx.writeFile("bits.json", JSON.stringify({ checks: bits }, null, 2) + "\n", {
    deterministic: true,
  });
  const bad = bits.filter((b) => b.rowwiseMismatches > 0 || b.rerunMismatches > 0);
  if (bad.length > 0) {
    throw new Error(
      `bit checks failed (bits.json): ${
        bad.map((b) =>
          `${b.name} ${b.pass}: ${b.rowwiseMismatches} words differ from the row-wise kernels, ` +
          `${b.rerunMismatches} from a rerun`
        ).join("; ")
      }`,
    );
  }
}

/** The `bench-attention` experiment kind. */
export const benchAttentionKind = defineKind({
  kind: "bench-attention",
  description: "attention forward, decode and backward: blocked vs row-wise kernels, bit checks",
  schema: BenchAttentionSchema,
  run,
});
