/**
 * AlpacaEval's instruction difficulties (`instruction_difficulty.csv` in the tatsu-lab/alpaca_eval
 * dataset on Hugging Face): one value per instruction of the 805-instruction eval set, keyed by
 * its position, estimated by AlpacaEval from many models' annotations. The length-controlled
 * fit uses it as its instruction term (length_controlled.ts). The file is a header line, then
 * `index,value` rows; every error names the file and line.
 *
 * @module
 */
import { UserError } from "../util/user_error.ts";

/** Parses the CSV text into index -> difficulty. */
export function parseInstructionDifficulty(text: string, source: string): Map<number, number> {
  const lines = text.split(/\r?\n/);
  const table = new Map<number, number>();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "") continue;
    const cells = line.split(",");
    if (cells.length !== 2) {
      throw new UserError(
        `${source}:${i + 1}: expected "index,instruction_difficulty", got "${line}"`,
      );
    }
    const index = Number(cells[0]), value = Number(cells[1]);
    if (cells[0].trim() === "" || !Number.isInteger(index) || index < 0) {
      throw new UserError(`${source}:${i + 1}: index "${cells[0]}" is not an integer >= 0`);
    }
    if (cells[1].trim() === "" || !Number.isFinite(value)) {
      throw new UserError(
        `${source}:${i + 1}: instruction_difficulty "${cells[1]}" is not a number`,
      );
    }
    if (table.has(index)) throw new UserError(`${source}:${i + 1}: index ${index} appears twice`);
    table.set(index, value);
  }
  if (table.size === 0) throw new UserError(`${source}: no rows after the header`);
  return table;
}

/** Reads and parses the file (synchronously: the runner checks inputs before a run starts). */
export function readInstructionDifficulty(path: string): Map<number, number> {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new UserError(`${path}: cannot read (${(e as Error).message})`);
  }
  return parseInstructionDifficulty(text, path);
}

/** The difficulties of eval-set instructions 0..n-1; a missing index is an error. */
export function difficultiesFor(table: Map<number, number>, n: number, source: string): number[] {
  return Array.from({ length: n }, (_, i) => {
    const v = table.get(i);
    if (v === undefined) {
      throw new UserError(
        `${source}: no difficulty for eval-set instruction ${i} (the table has ${table.size} ` +
          `rows; it must cover every instruction evaluated, by position)`,
      );
    }
    return v;
  });
}
