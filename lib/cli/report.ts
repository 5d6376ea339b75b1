/**
 * `report <bundle>... [--out DIR]`: charts and report.html for one or many result bundles (see
 * lib/report/report.ts for where they go by default).
 *
 * @module
 */
import { type Command, parseCommandArgs, UsageError } from "./command.ts";

function sizeFlag(value: unknown, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 16 || n > 8192) {
    throw new UsageError(
      `report: --${flag} must be an integer from 16 to 8192, got "${value}"`,
      reportCommand,
    );
  }
  return n;
}

/** The `report` command. */
export const reportCommand: Command = {
  name: "report",
  summary: "draw charts (PNG) and a self-contained report.html for one or many bundles",
  usage: `Usage: deno task report <bundle-dir>... [--out DIR] [--force] [--width 800] [--height 450]

Draws a chart per metric series of each run (long series downsampled, with an EMA line),
comparison charts across runs (reward, KL, ... on one axis), held-out results with error bars
(mean ± 1.96 SE), and report.html: offline, interactive, with provenance, the resolved manifest,
the evaluation tables and sampled challenger/solver transcripts.

Output: --out DIR, else for one unsealed bundle its own charts/ and report.html; for a sealed
bundle (bundle.json present: adding files would break verify) or several bundles,
results/reports/<hash>/ beside the experiments' folders.

Options:
  --out DIR     output folder
  --width W     figure width in pixels (default 800)
  --height H    figure height in pixels (default 450)
  --force       write into a non-empty --out folder that holds no earlier report (report.html
                and charts/ are written there; nothing else is touched)
  -h, --help    show this help

Exit status: 0 written, 1 failure (e.g. a malformed bundle file), 2 usage error.`,
  run(args) {
    return runReportCommand(args);
  },
};

/** Runs the report command on the arguments after its name; returns the exit code. */
export async function runReportCommand(args: string[]): Promise<number> {
  const p = parseCommandArgs(
    reportCommand,
    args,
    {
      out: { type: "string" },
      width: { type: "string" },
      height: { type: "string" },
      force: { type: "boolean" },
    },
    1,
    Infinity,
  );
  if (!p) return 0;
  // Loaded only for this command: the report code pulls in chart.js and a native canvas.
  const { FIGURE_SIZE } = await import("../report/figures.ts");
  const size = {
    width: sizeFlag(p.values.width, "width", FIGURE_SIZE.width),
    height: sizeFlag(p.values.height, "height", FIGURE_SIZE.height),
  };
  const { writeReport } = await import("../report/report.ts");
  const result = await writeReport(p.positionals, {
    outDir: typeof p.values.out === "string" ? p.values.out : undefined,
    size,
    force: p.values.force === true,
  });
  console.log(`report: ${result.pngs.length} charts under ${result.outDir}`);
  console.log(`report: ${result.htmlPath}`);
  return 0;
}
