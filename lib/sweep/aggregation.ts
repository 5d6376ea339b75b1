/**
 * Aggregations: what a sweep computes from its finished members (a table across seeds, its
 * figures). Each is registered by name (the tiny world registers "tiny-table" from its plugin;
 * "metrics-table" is built in) and named by a sweep manifest's `aggregate.kind`, with its own
 * parameters beside `kind`. It gets the members the sweep verified (arm, seed, bundle folder,
 * root hash, resolved manifest) and returns files for the sweep's bundle.
 *
 * @module
 */
import type { z } from "zod";
import { Registry } from "../util/registry.ts";

/** A member as an aggregation sees it: complete, verified, of the manifest the sweep resolved. */
export interface SweepMember {
  /** `<arm>/s<seed>`. */
  id: string;
  arm: string;
  seed: number;
  /** Absolute path of its bundle folder. */
  dir: string;
  /** Its bundle's root hash, as verified. */
  rootHash: string;
  /** Its resolved manifest (manifest.json). */
  manifest: Readonly<Record<string, unknown>>;
}

/** One file an aggregation adds to the sweep's bundle. */
export interface AggregationFile {
  /** Bundle-relative '/' path (not `members/`, `slurm/`, plan.json or sweep.json). */
  path: string;
  content: Uint8Array | string;
  /**
   * True (the default): reproduced byte for byte by a rerun, so no root hashes, paths, times or
   * host facts in it. False: a run-specific record.
   */
  deterministic?: boolean;
}

/** What an aggregation is given. */
export interface AggregationInput<P> {
  /** The sweep's experiment name. */
  sweep: string;
  /** Arm names and seeds in the manifest's order. */
  arms: readonly string[];
  seeds: readonly number[];
  /** Every member, arm-major in the manifest's order. */
  members: readonly SweepMember[];
  /** Its parameters (`aggregate` without `kind`), validated, defaults filled. */
  params: P;
  log(msg: string): void;
}

/** An aggregation: its parameters' schema and the function that writes its files. */
export interface Aggregation<P = Record<string, unknown>> {
  /** One line, for messages. */
  readonly description: string;
  /** Its parameters: a strict zod object with defaults (`kind` is the sweep's). */
  readonly schema: z.ZodType<P>;
  run(input: AggregationInput<P>): Promise<{ files: AggregationFile[]; summary: string }>;
}

/** Every aggregation a sweep manifest can name. */
export const AGGREGATIONS: Registry<Aggregation> = new Registry<Aggregation>("aggregation");

/** Types an aggregation's parameters from its schema and erases them for the registry. */
export function defineAggregation<S extends z.ZodType<Record<string, unknown>>>(
  a: Aggregation<z.output<S>> & { schema: S },
): Aggregation {
  return a as unknown as Aggregation;
}
