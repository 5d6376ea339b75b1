/**
 * The limits a benchmark's figures are fractions of: the adapter's f32 vector peak (GFLOP/s,
 * without tensor cores: WGSL cannot use them) and its memory bandwidth (GB/s, 1 GB = 10⁹ B).
 * They come from the manifest (`peaks`) or from a table of known adapters (vendor datasheet
 * figures, dense, boost clock); an adapter in neither has unknown peaks and its fractions are null.
 *
 * @module
 */
import type { BenchRow } from "./gpu_timing.ts";
import { z } from "zod";
import type { GpuInfo } from "../../gpu/device.ts";

/** One known adapter: a pattern over its name and its datasheet peaks. */
interface KnownAdapter {
  name: string;
  /** Tested against the adapter's description and device strings. */
  match: RegExp;
  f32Gflops: number;
  memoryGBps: number;
}

/**
 * Datasheet peaks of adapters we may meet. More specific patterns come first (an "H100 PCIe"
 * also matches "H100").
 */
export const KNOWN_ADAPTERS: readonly KnownAdapter[] = [
  { name: "NVIDIA H200 (SXM)", match: /H200/i, f32Gflops: 67_000, memoryGBps: 4_800 },
  { name: "NVIDIA H100 NVL", match: /H100\s*NVL/i, f32Gflops: 60_000, memoryGBps: 3_900 },
  { name: "NVIDIA H100 PCIe", match: /H100\s*PCIe/i, f32Gflops: 51_000, memoryGBps: 2_000 },
  { name: "NVIDIA H100 (SXM)", match: /H100/i, f32Gflops: 67_000, memoryGBps: 3_350 },
  { name: "NVIDIA A100 40GB", match: /A100.*40\s*GB/i, f32Gflops: 19_500, memoryGBps: 1_555 },
  { name: "NVIDIA A100 80GB", match: /A100/i, f32Gflops: 19_500, memoryGBps: 2_039 },
  { name: "NVIDIA L40S", match: /L40S/i, f32Gflops: 91_600, memoryGBps: 864 },
  { name: "NVIDIA L4", match: /\bL4\b/i, f32Gflops: 30_300, memoryGBps: 300 },
  { name: "NVIDIA A10", match: /\bA10G?\b/i, f32Gflops: 31_200, memoryGBps: 600 },
  { name: "NVIDIA T4", match: /\bT4\b/i, f32Gflops: 8_100, memoryGBps: 320 },
  { name: "NVIDIA GeForce RTX 4090", match: /RTX\s*4090/i, f32Gflops: 82_600, memoryGBps: 1_008 },
  { name: "NVIDIA GeForce RTX 3090", match: /RTX\s*3090/i, f32Gflops: 35_600, memoryGBps: 936 },
];

/** Manifest field: peaks to use instead of the table (either may be left null). */
export const PeaksField = z.strictObject({
  /** f32 vector peak in GFLOP/s. */
  f32Gflops: z.number().positive().nullable().default(null),
  /** Memory bandwidth in GB/s (10⁹ B/s). */
  memoryGBps: z.number().positive().nullable().default(null),
}).prefault({});

/** The peaks a run's fractions refer to, and where they came from. */
export interface AdapterPeaks {
  f32Gflops: number | null;
  memoryGBps: number | null;
  /** "manifest", "table: <name>", "manifest + table: <name>" or "unknown". */
  source: string;
}

/** The peaks for an adapter: the manifest's where given, else the table's, else null. */
export function adapterPeaks(
  info: Pick<GpuInfo, "description" | "device">,
  given: z.output<typeof PeaksField>,
): AdapterPeaks {
  const text = `${info.description} ${info.device}`;
  const known = KNOWN_ADAPTERS.find((a) => a.match.test(text));
  const f32 = given.f32Gflops ?? known?.f32Gflops ?? null;
  const mem = given.memoryGBps ?? known?.memoryGBps ?? null;
  const fromManifest = given.f32Gflops !== null || given.memoryGBps !== null;
  const fromTable = known !== undefined &&
    (given.f32Gflops === null || given.memoryGBps === null);
  const source = fromManifest && fromTable
    ? `manifest + table: ${known!.name}`
    : fromManifest
    ? "manifest"
    : fromTable
    ? `table: ${known!.name}`
    : "unknown";
  return { f32Gflops: f32, memoryGBps: mem, source };
}

/** value / peak, or null when the peak is unknown. */
export const fractionOf = (value: number, peak: number | null): number | null =>
  peak === null ? null : value / peak;

/** What {@link throughputRows} reads of a timed case. */
export interface ThroughputCase {
  gflops: number;
  gbps: number;
  fractionOfF32Peak: number | null;
  fractionOfBandwidth: number | null;
}

/** A timed op's speed (lib/bench/gpu_timing.ts) as rates and fractions of the adapter's peaks. */
export interface TimedThroughput extends ThroughputCase {
  /** Fastest repeat and the median repeat, ms per op. */
  msPerOp: number;
  medianMsPerOp: number;
  opsPerSubmit: number;
}

/**
 * {@link TimedThroughput} of an op that does `flops` and must move at least `bytes` (each input
 * read once, each output written once), timed as `t`.
 */
export function timedThroughput(
  t: { msPerOp: number; medianMsPerOp: number; opsPerSubmit: number },
  flops: number,
  bytes: number,
  peaks: AdapterPeaks,
): TimedThroughput {
  const gflops = flops / (t.msPerOp * 1e6), gbps = bytes / (t.msPerOp * 1e6);
  return {
    msPerOp: t.msPerOp,
    medianMsPerOp: t.medianMsPerOp,
    opsPerSubmit: t.opsPerSubmit,
    gflops,
    gbps,
    fractionOfF32Peak: fractionOf(gflops, peaks.f32Gflops),
    fractionOfBandwidth: fractionOf(gbps, peaks.memoryGBps),
  };
}

/** A timed case's two table rows: GFLOP/s against the f32 peak, GB/s against the bandwidth. */
export function throughputRows(label: string, c: ThroughputCase, peaks: AdapterPeaks): BenchRow[] {
  return [
    {
      case: label,
      value: c.gflops,
      unit: "GFLOP/s",
      fraction: c.fractionOfF32Peak,
      of: peaks.f32Gflops === null ? null : `f32 peak ${peaks.f32Gflops} GFLOP/s`,
    },
    {
      case: label,
      value: c.gbps,
      unit: "GB/s",
      fraction: c.fractionOfBandwidth,
      of: peaks.memoryGBps === null ? null : `memory ${peaks.memoryGBps} GB/s`,
    },
  ];
}
