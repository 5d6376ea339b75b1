/**
 * The built-in aggregation "metrics-table": each member's final metrics line (the last line of
 * its metrics.jsonl, or of another JSONL file, or a whole JSON file such as eval.json; numbers
 * only, nested keys as dot names) side by side, and per arm the mean over its seeds. A generic view of any sweep; experiment-specific tables (the tiny world's
 * "tiny-table") register their own aggregation.
 *
 * @module
 */
import { join } from "node:path";
import { z } from "zod";
import { canonicalJson } from "../manifest/canonical.ts";
import { AGGREGATIONS, defineAggregation, type SweepMember } from "./aggregation.ts";

/** A JSON object's numeric leaves by dot name. */
function numericLeaves(v: unknown, prefix = "", out: Record<string, number> = {}) {
  if (typeof v === "number" && Number.isFinite(v)) out[prefix] = v;
  else if (typeof v === "object" && v !== null && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v)) numericLeaves(x, prefix ? `${prefix}.${k}` : k, out);
  }
  return out;
}

/**
 * The last line of a member's JSONL file (or the whole of a `.json` file, such as eval.json), as
 * numbers by dot name.
 */
async function finalLine(m: SweepMember, file: string): Promise<Record<string, number>> {
  const path = join(m.dir, file);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`metrics-table: member ${m.id}: cannot read ${file} (${(e as Error).message})`);
  }
  if (file.endsWith(".json")) {
    try {
      return numericLeaves(JSON.parse(text));
    } catch (e) {
      throw new Error(`metrics-table: member ${m.id}: ${file}: ${(e as Error).message}`);
    }
  }
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  if (lines.length === 0) throw new Error(`metrics-table: member ${m.id}: ${file} is empty`);
  try {
    return numericLeaves(JSON.parse(lines.at(-1)!));
  } catch (e) {
    throw new Error(`metrics-table: member ${m.id}: ${file}: last line: ${(e as Error).message}`);
  }
}

const fmt = (x: number | null) => x === null ? "-" : Number(x.toPrecision(4)).toString();

/** A plain-text table, columns padded. */
function textTable(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(w[i])).join("  ").trimEnd();
  return [line(head), line(w.map((n) => "-".repeat(n))), ...rows.map(line)].join("\n") + "\n";
}

AGGREGATIONS.register(
  "metrics-table",
  defineAggregation({
    description: "each member's final metrics line, and per arm the mean over seeds",
    schema: z.strictObject({
      /** The JSONL file whose last line is read (a `.json` file is read whole). */
      file: z.string().min(1).default("metrics.jsonl"),
      /** The dot names to show ([]: every numeric key any member has). */
      keys: z.array(z.string().min(1)).default([]),
    }),
    async run({ members, arms, params }) {
      const finals = new Map<string, Record<string, number>>();
      for (const m of members) finals.set(m.id, await finalLine(m, params.file));
      const keys = params.keys.length > 0
        ? params.keys
        : [...new Set([...finals.values()].flatMap((f) => Object.keys(f)))].sort();
      const rows = members.map((m) => ({
        member: m.id,
        arm: m.arm,
        seed: m.seed,
        values: Object.fromEntries(keys.map((k) => [k, finals.get(m.id)![k] ?? null])),
      }));
      const means = arms.map((arm) => {
        const of = rows.filter((r) => r.arm === arm);
        return {
          arm,
          seeds: of.length,
          mean: Object.fromEntries(keys.map((k) => {
            const xs = of.map((r) => r.values[k]).filter((x): x is number => x !== null);
            return [
              k,
              xs.length === of.length && xs.length > 0
                ? xs.reduce((a, b) => a + b, 0) / xs.length
                : null,
            ];
          })),
        };
      });
      const table = { file: params.file, keys, rows, arms: means };
      const text = `final line of ${params.file} per member\n` +
        textTable(
          ["member", ...keys],
          rows.map((r) => [r.member, ...keys.map((k) => fmt(r.values[k]))]),
        ) + `\nmean over seeds per arm\n` +
        textTable(
          ["arm", "seeds", ...keys],
          means.map((a) => [a.arm, String(a.seeds), ...keys.map((k) => fmt(a.mean[k]))]),
        );
      return {
        files: [
          { path: "metrics_table.json", content: canonicalJson(table, 2) + "\n" },
          { path: "metrics_table.txt", content: text },
        ],
        summary: `metrics-table: ${members.length} members x ${keys.length} metrics ` +
          `(metrics_table.txt)`,
      };
    },
  }),
);
