/**
 * Where the GRPO data baseline's queries come from: an Alpaca-style instruction file (`file`,
 * built in: the paper's setting) or a source registered in {@link QUERY_SOURCES} by another part
 * of the program (the tiny world's fixed set of generated training tasks), which this area knows
 * only by this interface.
 *
 * @module
 */
import { z } from "zod";
import { loadInstructions } from "../data/instructions.ts";
import { FileSourceSchema, resolveFileSource } from "../data/file_source.ts";
import { Registry } from "../util/registry.ts";

/** Makes the fixed query list of a run from the `data` section and the run's seed. */
export type QuerySourceFactory = (data: DataParams, seed: number) => Promise<string[]>;

/** Query sources other parts of the program provide, by the name a `data.source` gives. */
export const QUERY_SOURCES: Registry<QuerySourceFactory> = new Registry<QuerySourceFactory>(
  "query source",
);

/** The `data` section of a `grpo` manifest. */
export const DataSchema = z.strictObject({
  /** `file`: Alpaca JSON/JSONL; or a registered source (`tiny`: generated training tasks). */
  source: QUERY_SOURCES.nameSchema(["file"]),
  file: FileSourceSchema.prefault({}),
  size: z.number().int().min(1).default(512),
  minLevel: z.number().int().min(1).default(1),
  maxLevel: z.number().int().min(1).default(5),
  shuffle: z.boolean().default(true),
});

/** Parsed `data` section. */
export type DataParams = z.output<typeof DataSchema>;

/** The user turns of an Alpaca-style JSON/JSONL file (instruction plus input). */
export async function instructionQueries(path: string): Promise<string[]> {
  return (await loadInstructions(path)).map((it) => it.prompt);
}

/** The run's queries from its `data` section. */
export async function loadQueries(data: DataParams, seed: number): Promise<string[]> {
  if (data.source === "file") {
    return await instructionQueries(resolveFileSource(data.file, "data.file"));
  }
  return await QUERY_SOURCES.get(data.source)(data, seed);
}
