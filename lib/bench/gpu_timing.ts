/**
 * Timing recorded GPU work, and the table every benchmark writes into bench.json.
 *
 * A submission's wall time includes a fixed cost (encoding, the ~11 ms completion notification
 * in Deno, see DESIGN.md) that would swamp a short kernel. {@link timePerOp} records the same
 * work n times into one submission and once into another: (t(n) - t(1)) / (n - 1) is the time
 * of one more op, with the fixed cost cancelled.
 *
 * @module
 */
import type { Gpu } from "../../gpu/device.ts";
import { Recorder } from "../../gpu/recorder.ts";

/** Median of a non-empty list. */
export const median = (xs: number[]): number =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function timeSubmission(gpu: Gpu, record: (rec: Recorder) => void, n: number) {
  const rec = new Recorder(gpu);
  for (let i = 0; i < n; i++) record(rec);
  const t0 = performance.now();
  await rec.submit();
  await gpu.device.queue.onSubmittedWorkDone();
  return performance.now() - t0;
}

/** What {@link timePerOp} measured. */
export interface OpTiming {
  /**
   * Milliseconds of one op: (fastest t(n) - fastest t(1)) / (n - 1) over the repeats. Other work
   * on a shared machine only ever adds time, so the fastest submissions are the steadiest
   * estimates (a difference of medians, or a median of differences, goes negative under load).
   */
  msPerOp: number;
  /** The median over repeats of (t(n) - t(1)) / (n - 1), for the spread. */
  medianMsPerOp: number;
  /** Ops per timed submission (n). */
  opsPerSubmit: number;
}

/** Ops per submission so that one takes about `targetMs`, within [3, maxOps]. */
async function opsFor(
  gpu: Gpu,
  record: (rec: Recorder) => void,
  targetMs: number,
  maxOps: number,
): Promise<number> {
  await timeSubmission(gpu, record, 1); // compile pipelines, touch the buffers
  const probe = await timeSubmission(gpu, record, 2) - await timeSubmission(gpu, record, 1);
  return Math.max(3, Math.min(maxOps, Math.ceil(targetMs / Math.max(probe, 0.01))));
}

/**
 * Times one op of each of `records` (each must be safe to repeat: same inputs, same outputs),
 * alternating them in every repeat so that a change in the machine's load hits all alike.
 * n is chosen per op so that a submission of n ops takes about `targetMs`, within [3, maxOps].
 */
export async function timePerOp(
  gpu: Gpu,
  records: ((rec: Recorder) => void)[],
  opts: { targetMs: number; repeats: number; maxOps?: number },
): Promise<OpTiming[]> {
  const ns: number[] = [];
  for (const r of records) ns.push(await opsFor(gpu, r, opts.targetMs, opts.maxOps ?? 200));
  const ones: number[][] = records.map(() => []), manys: number[][] = records.map(() => []);
  for (let rep = 0; rep < opts.repeats; rep++) {
    for (let i = 0; i < records.length; i++) {
      ones[i].push(await timeSubmission(gpu, records[i], 1));
      manys[i].push(await timeSubmission(gpu, records[i], ns[i]));
    }
  }
  return records.map((_, i) => ({
    msPerOp: Math.max((Math.min(...manys[i]) - Math.min(...ones[i])) / (ns[i] - 1), 1e-6),
    medianMsPerOp: median(manys[i].map((m, r) => Math.max((m - ones[i][r]) / (ns[i] - 1), 1e-6))),
    opsPerSubmit: ns[i],
  }));
}

/**
 * One line of a benchmark's table: a figure, its unit, and its fraction of the adapter's limit
 * (null when that limit is unknown). `deno task report` draws these for every bench bundle.
 */
export interface BenchRow {
  /** What was measured, e.g. "forward M=1 K=3072 N=8192 (engine)". */
  case: string;
  value: number;
  unit: string;
  fraction: number | null;
  /** The limit the fraction is of, e.g. "f32 peak 67000 GFLOP/s", or null. */
  of: string | null;
}
