/**
 * Instruction datasets: Alpaca-style training data (for the GRPO baseline) and AlpacaEval-style
 * evaluation sets, as JSON arrays or JSONL, validated record by record. Every error names the
 * file and the record (line for JSONL, index for JSON) and the field.
 *
 * @module
 */
import { UserError } from "../util/user_error.ts";

/** One instruction with the subset it belongs to (AlpacaEval's `dataset`). */
export interface Instruction {
  /** The user turn given to the model: the instruction, plus its input when there is one. */
  prompt: string;
  instruction: string;
  input: string;
  /** Reference output when the dataset has one (Alpaca), else "". */
  output: string;
  /** Subset name; "default" when the record has none. */
  dataset: string;
}

/** A malformed dataset; the message names the file, record and field. */
export class DatasetError extends UserError {
  override name = "DatasetError";
}

/** Parses JSON-array or JSONL text into records, naming each bad line. */
export function parseRecords(text: string, source: string): { where: string; value: unknown }[] {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // a UTF-8 byte order mark
  const trimmed = text.trimStart();
  if (trimmed.length === 0) throw new DatasetError(`${source}: the file is empty`);
  if (trimmed.startsWith("[")) {
    let arr: unknown;
    try {
      arr = JSON.parse(text);
    } catch (e) {
      throw new DatasetError(`${source}: not valid JSON (${(e as Error).message})`);
    }
    if (!Array.isArray(arr)) throw new DatasetError(`${source}: expected a JSON array`);
    return arr.map((value, i) => ({ where: `${source} record ${i}`, value }));
  }
  const out: { where: string; value: unknown }[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "") continue;
    try {
      out.push({ where: `${source}:${i + 1}`, value: JSON.parse(line) });
    } catch (e) {
      throw new DatasetError(`${source}:${i + 1}: not valid JSON (${(e as Error).message})`);
    }
  }
  return out;
}

function field(
  rec: Record<string, unknown>,
  key: string,
  where: string,
  required: boolean,
): string {
  const v = rec[key];
  if (v === undefined || v === null) {
    if (required) throw new DatasetError(`${where}: missing field "${key}"`);
    return "";
  }
  if (typeof v !== "string") {
    throw new DatasetError(`${where}: field "${key}" must be a string, got ${typeof v}`);
  }
  return v;
}

/** Validates parsed records into instructions. */
export function toInstructions(records: { where: string; value: unknown }[]): Instruction[] {
  if (records.length === 0) throw new DatasetError("the dataset holds no records");
  return records.map(({ where, value }) => {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new DatasetError(`${where}: expected an object with an "instruction" field`);
    }
    const rec = value as Record<string, unknown>;
    const instruction = field(rec, "instruction", where, true);
    if (instruction.trim() === "") throw new DatasetError(`${where}: "instruction" is empty`);
    const input = field(rec, "input", where, false);
    const output = field(rec, "output", where, false);
    const dataset = field(rec, "dataset", where, false) || "default";
    const prompt = input.trim() === "" ? instruction : `${instruction}\n\n${input}`;
    return { prompt, instruction, input, output, dataset };
  });
}

/** Loads an Alpaca-style (instruction, input, output) or AlpacaEval-style file. */
export async function loadInstructions(path: string): Promise<Instruction[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new DatasetError(`${path}: no such file`);
    }
    throw new DatasetError(`${path}: cannot be read (${(e as Error).message})`);
  }
  return toInstructions(parseRecords(text, path));
}

/** One entry of AlpacaEval's `model_outputs.json`. */
export interface ModelOutput {
  instruction: string;
  output: string;
  generator: string;
  dataset: string;
}

/** Builds AlpacaEval's model_outputs.json content (stable key order, trailing newline). */
export function modelOutputsJson(
  items: Instruction[],
  outputs: string[],
  generator: string,
): string {
  if (items.length !== outputs.length) {
    throw new Error(`${items.length} instructions but ${outputs.length} outputs`);
  }
  const rows: ModelOutput[] = items.map((it, i) => ({
    instruction: it.instruction,
    output: outputs[i],
    generator,
    dataset: it.dataset,
  }));
  return JSON.stringify(rows, null, 2) + "\n";
}
