/**
 * An evaluation set in AlpacaEval's format (`instruction`, optional `input`, `dataset` subset),
 * loaded with the shared instruction loader and identified by a content hash, so cached base
 * outputs and results can say exactly which instructions they answer.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { DatasetError, type Instruction, loadInstructions } from "../data/instructions.ts";

/** A loaded evaluation set. */
export interface EvalSet {
  /** Where it came from (a file path, or a description for in-memory sets). */
  source: string;
  items: Instruction[];
  /** SHA-256 over the items' prompts and subsets, in order (see {@link evalSetHash}). */
  hash: string;
}

/** Options of {@link loadEvalSet}. */
export interface EvalSetOptions {
  /** Keep only the first `limit` instructions (after the subset filter). */
  limit?: number;
  /** Keep only these subsets (`dataset` values); each must occur in the file. */
  subsets?: string[];
}

/** SHA-256 of what the models see and how it is grouped: each item's prompt and subset. */
export function evalSetHash(items: readonly Instruction[]): string {
  const h = createHash("sha256");
  for (const it of items) h.update(JSON.stringify([it.prompt, it.dataset]) + "\n");
  return h.digest("hex");
}

/** Wraps in-memory instructions as an eval set. */
export function evalSetOf(items: Instruction[], source = "in-memory eval set"): EvalSet {
  if (items.length === 0) throw new DatasetError(`${source}: the eval set is empty`);
  return { source, items, hash: evalSetHash(items) };
}

/** Loads an AlpacaEval-style JSON/JSONL file; bad files and options name the file and field. */
export async function loadEvalSet(path: string, opts: EvalSetOptions = {}): Promise<EvalSet> {
  let items = await loadInstructions(path);
  if (opts.subsets !== undefined) {
    if (!Array.isArray(opts.subsets) || opts.subsets.length === 0) {
      throw new DatasetError(`${path}: subsets must be a non-empty list of dataset names`);
    }
    const present = new Set(items.map((it) => it.dataset));
    for (const s of opts.subsets) {
      if (!present.has(s)) {
        throw new DatasetError(
          `${path}: subset "${s}" does not occur in the "dataset" field (present: ${
            [...present].sort().join(", ")
          })`,
        );
      }
    }
    const keep = new Set(opts.subsets);
    items = items.filter((it) => keep.has(it.dataset));
  }
  if (opts.limit !== undefined) {
    if (!Number.isInteger(opts.limit) || opts.limit < 1) {
      throw new DatasetError(`${path}: limit must be an integer >= 1, got ${opts.limit}`);
    }
    if (opts.limit > items.length) {
      throw new DatasetError(
        `${path}: limit ${opts.limit} is more than the ${items.length} instructions available`,
      );
    }
    items = items.slice(0, opts.limit);
  }
  return evalSetOf(items, path);
}
