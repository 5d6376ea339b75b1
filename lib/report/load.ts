/**
 * Reading a result bundle for reports: every file is optional (a gpu-probe or sft bundle has only
 * some), but a file that is present and malformed is an error naming the file and line.
 *
 * @module
 */
import { UserError } from "../util/user_error.ts";
import { basename, join, resolve } from "node:path";
import type { Point } from "./downsample.ts";

/** A JSON object as read from a bundle file. */
export type JsonObject = { [key: string]: unknown };

/** One sampled transcript line of samples.jsonl. */
export interface Sample {
  iter?: number;
  role?: string;
  query?: string;
  answer?: string;
  reward?: number;
  /** Every field of the line, for the fields a report does not know by name. */
  raw: JsonObject;
}

/** What a report needs from one bundle. */
export interface BundleData {
  /** Absolute path of the bundle folder. */
  dir: string;
  experiment: string;
  runId: string;
  /** Short label for legends: `experiment/runId`. */
  label: string;
  manifest?: JsonObject;
  provenance?: JsonObject;
  status?: JsonObject;
  bundle?: JsonObject;
  /** Numeric metric series keyed by (dot-flattened) metric name, x = iter or step. */
  series: Map<string, Point[]>;
  /** Which field gave the x axis ("iter" or "step"), if any metrics exist. */
  xName?: string;
  /** metrics.jsonl rows with neither `iter` nor `step` (e.g. a gpu-probe's checks). */
  metricRecords: JsonObject[];
  samples: Sample[];
  eval?: JsonObject;
  /** bench.json's `table` (lib/bench/gpu_timing.ts BenchRow), for benchmark bundles. */
  bench: BenchTableRow[];
}

/** One row of a benchmark's table: a figure and its fraction of the adapter's limit. */
export interface BenchTableRow {
  case: string;
  value: number;
  unit: string;
  fraction: number | null;
  of: string | null;
}

/** Reads bench.json's `table` (absent: none); a malformed row is an error naming the file. */
function benchTable(bench: JsonObject | undefined, path: string): BenchTableRow[] {
  if (bench === undefined || bench.table === undefined) return [];
  if (!Array.isArray(bench.table)) throw new Error(`${path}: "table" must be an array`);
  return bench.table.map((row, i) => {
    const r = row as Record<string, unknown>;
    const ok = r !== null && typeof r === "object" && typeof r.case === "string" &&
      typeof r.value === "number" && typeof r.unit === "string" &&
      (r.fraction === null || typeof r.fraction === "number") &&
      (r.of === null || typeof r.of === "string");
    if (!ok) {
      throw new Error(`${path}: table[${i}] must be {case, value, unit, fraction, of}`);
    }
    return r as unknown as BenchTableRow;
  });
}

async function readTextIfPresent(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

function parseObject(text: string, where: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${where}: invalid JSON (${(e as Error).message})`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new UserError(`${where}: expected a JSON object`);
  }
  return value as JsonObject;
}

async function readJsonObject(path: string): Promise<JsonObject | undefined> {
  const text = await readTextIfPresent(path);
  return text === undefined ? undefined : parseObject(text, path);
}

/** Parses a .jsonl file into objects; blank lines are skipped, bad lines name file:line. */
export function parseJsonl(text: string, path: string): JsonObject[] {
  const out: JsonObject[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "") continue;
    out.push(parseObject(line, `${path}:${i + 1}`));
  }
  return out;
}

/** Adds every finite number in `value` to `into` under dot-joined names ("solver.reward.mean"). */
function flattenNumbers(value: unknown, prefix: string, into: Map<string, number>) {
  if (typeof value === "number") {
    if (Number.isFinite(value)) into.set(prefix, value);
  } else if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) {
      flattenNumbers(v, prefix === "" ? k : `${prefix}.${k}`, into);
    }
  }
}

/**
 * Turns metrics.jsonl rows into series keyed by metric name. The x value is `iter` when a row has
 * it, else `step`. Rows with neither are not points of a series (a gpu-probe writes one row per
 * check): they are returned as `records`. Non-numeric fields are skipped.
 */
export function metricSeries(
  rows: readonly JsonObject[],
): { series: Map<string, Point[]>; xName?: string; records: JsonObject[] } {
  const series = new Map<string, Point[]>();
  const records: JsonObject[] = [];
  let xName: string | undefined;
  rows.forEach((row) => {
    const key = typeof row.iter === "number" ? "iter" : typeof row.step === "number" ? "step" : "";
    if (key === "") {
      records.push(row);
      return;
    }
    xName ??= key;
    const x = row[key] as number;
    const values = new Map<string, number>();
    for (const [k, v] of Object.entries(row)) {
      if (k === "iter" || k === "step") continue;
      flattenNumbers(v, k, values);
    }
    for (const [name, y] of values) {
      let s = series.get(name);
      if (!s) series.set(name, s = []);
      s.push({ x, y });
    }
  });
  return { series, xName, records };
}

function toSample(raw: JsonObject): Sample {
  const str = (v: unknown) => (typeof v === "string" ? v : undefined);
  const num = (v: unknown) => (typeof v === "number" ? v : undefined);
  return {
    iter: num(raw.iter) ?? num(raw.step),
    role: str(raw.role),
    query: str(raw.query),
    answer: str(raw.answer),
    reward: num(raw.reward),
    raw,
  };
}

/** Loads a bundle folder; fails only when the folder is missing or a present file is malformed. */
export async function loadBundle(dir: string): Promise<BundleData> {
  const abs = resolve(dir);
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(abs);
  } catch {
    throw new UserError(`${dir}: bundle folder not found`);
  }
  if (!info.isDirectory) throw new UserError(`${dir}: not a folder (expected a result bundle)`);

  const manifest = await readJsonObject(join(abs, "manifest.json"));
  const provenance = await readJsonObject(join(abs, "provenance.json"));
  const status = await readJsonObject(join(abs, "status.json"));
  const bundle = await readJsonObject(join(abs, "bundle.json"));
  if (bundle === undefined && status === undefined) {
    throw new UserError(
      `${dir}: not a result bundle (no bundle.json or status.json); name a folder that ` +
        "`deno task exp` wrote",
    );
  }
  const evalResults = await readJsonObject(join(abs, "eval.json"));
  const benchPath = join(abs, "bench.json");
  const bench = benchTable(await readJsonObject(benchPath), benchPath);

  const metricsPath = join(abs, "metrics.jsonl");
  const metricsText = await readTextIfPresent(metricsPath);
  const { series, xName, records } = metricsText === undefined
    ? { series: new Map<string, Point[]>(), xName: undefined, records: [] }
    : metricSeries(parseJsonl(metricsText, metricsPath));

  const samplesPath = join(abs, "samples.jsonl");
  const samplesText = await readTextIfPresent(samplesPath);
  const samples = samplesText === undefined
    ? []
    : parseJsonl(samplesText, samplesPath).map(toSample);

  const pick = (...vs: unknown[]) => vs.find((v) => typeof v === "string" && v !== "") as string;
  const experiment = pick(bundle?.experiment, manifest?.name, manifest?.experiment) ??
    basename(resolve(abs, ".."));
  const runId = pick(bundle?.runId, status?.runId) ?? basename(abs);
  return {
    dir: abs,
    experiment,
    runId,
    label: `${experiment}/${runId}`,
    manifest,
    provenance,
    status,
    bundle,
    series,
    xName,
    metricRecords: records,
    samples,
    eval: evalResults,
    bench,
  };
}
