/**
 * The "tiny-table" aggregation of a sweep (lib/sweep): reads each verified member's eval.json,
 * metrics.jsonl and samples.jsonl, builds the table of table.ts, and writes table.json (one row
 * per arm: arm, accuracy, ci95, winRate, seeds, and the rest), table.txt, the figure's chart.js
 * configuration (table_figure.json) and its PNG (run-specific: fonts and canvas builds differ).
 * Members are named by arm: grpo, lsp-zero, lsp, lsp-grpo (the base row comes from them).
 *
 * @module
 */
import { join } from "node:path";
import { z } from "zod";
import { colorFor, ERROR_BAR_Z } from "../report/figures.ts";
import { defineAggregation, type SweepMember } from "../sweep/aggregation.ts";
import { readJsonFile } from "../util/json_file.ts";
import {
  formatTinyTable,
  TABLE_ARMS,
  type TableMember,
  type TableRow,
  tinyTable,
} from "./table.ts";

async function readJsonl(path: string): Promise<Record<string, unknown>[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  return text.split("\n").filter((l) => l.trim() !== "").map((l, i) => {
    try {
      return JSON.parse(l);
    } catch (e) {
      throw new Error(`${path}:${i + 1}: ${(e as Error).message}`);
    }
  });
}

/** What the table needs of a member, read from its bundle. */
async function tableMember(m: SweepMember): Promise<TableMember> {
  const ev = await readJsonFile(join(m.dir, "eval.json")) as {
    split?: string;
    policy?: { solver?: TableMember["policy"] };
    base?: { solver?: TableMember["base"] };
  };
  if (!ev.policy?.solver?.perTask || !ev.base?.solver?.perTask) {
    throw new Error(`tiny-table: member ${m.id}: eval.json has no per-task solver results`);
  }
  if (ev.split !== "heldout") {
    throw new Error(
      `tiny-table: member ${m.id} was evaluated on "${ev.split}", not the held-out set`,
    );
  }
  const samples = await readJsonl(join(m.dir, "samples.jsonl"));
  return {
    arm: m.arm,
    seed: m.seed,
    iterations: Number(m.manifest.iterations),
    policy: ev.policy.solver,
    base: ev.base.solver,
    metrics: await readJsonl(join(m.dir, "metrics.jsonl")) as TableMember["metrics"],
    queries: samples.map((s) => ({
      iter: Number(s.iter),
      queries: ((s.queries ?? []) as { query: string }[]).map((q) => q.query),
    })),
  };
}

/** Accuracy per arm, overall and by level, the overall bar with the paired 95% interval. */
export function tableFigure(rows: readonly TableRow[]): Record<string, unknown> {
  const levels = Object.keys(rows[0]?.byLevel ?? {});
  const labels = ["overall", ...levels.map((l) => `level ${l}`)];
  const base = rows.find((r) => r.arm === "base");
  return {
    type: "bar",
    data: {
      labels,
      datasets: rows.map((r, i) => ({
        label: r.arm,
        data: [r.accuracy, ...levels.map((l) => r.byLevel[l])],
        // The interval of the difference, placed on the arm's bar: half-width around it.
        errorBars: [
          r.ci95 && base ? (r.ci95[1] - r.ci95[0]) / 2 : null,
          ...levels.map(() => null),
        ],
        backgroundColor: colorFor(i),
        borderColor: colorFor(i),
      })),
    },
    options: {
      responsive: false,
      animation: false,
      plugins: {
        title: { display: true, text: "tiny table: held-out accuracy by arm" },
        subtitle: {
          display: true,
          text: `error bars: the paired ${ERROR_BAR_Z}-SE interval of the difference to the base`,
        },
      },
      scales: { x: { type: "category" }, y: { type: "linear", min: 0, suggestedMax: 1 } },
    },
  };
}

/** The tiny-table aggregation (registered by the tiny world's plugin). */
export const tinyTableAggregation = defineAggregation({
  description: "the paper's table in miniature: held-out accuracy per arm, paired with the base",
  schema: z.strictObject({}),
  async run({ members, log }) {
    for (const m of members) {
      if (!(TABLE_ARMS as readonly string[]).includes(m.arm) || m.arm === "base") {
        throw new Error(
          `tiny-table: arm "${m.arm}" is not one of ${TABLE_ARMS.slice(1).join(", ")}`,
        );
      }
    }
    const rows = tinyTable(await Promise.all(members.map(tableMember)));
    const text = formatTinyTable(rows);
    log(text);
    const figure = tableFigure(rows);
    const files: { path: string; content: string | Uint8Array; deterministic?: boolean }[] = [
      { path: "table.json", content: JSON.stringify(rows, null, 2) + "\n" },
      { path: "table.txt", content: text + "\n" },
      { path: "table_figure.json", content: JSON.stringify(figure, null, 2) + "\n" },
    ];
    try {
      const { renderPng } = await import("../report/render_png.ts");
      files.push({ path: "table.png", content: await renderPng(figure), deterministic: false });
    } catch (e) {
      log(`tiny-table: figure not drawn: ${(e as Error).message}`);
    }
    const arms = rows.filter((r) => r.arm !== "base");
    return {
      files,
      summary: `tiny-table: ${rows.length} rows (${
        arms.map((r) => `${r.arm} ${(100 * r.accuracy).toFixed(1)}%`).join(", ")
      }; base ${(100 * rows[0].accuracy).toFixed(1)}%)`,
    };
  },
});
