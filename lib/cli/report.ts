/**
 * `report <bundle>... [--out DIR] [--width W] [--height H]`: charts and report.html for one or
 * many result bundles (see lib/report/report.ts for where they go by default).
 *
 * @module
 */
import { parseArgs } from "node:util";

const USAGE = "usage: deno task report <bundle>... [--out DIR] [--width 800] [--height 450]";

function positiveInt(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 16 || n > 8192) {
    throw new Error(`report: --${flag} must be an integer from 16 to 8192, got "${value}"`);
  }
  return n;
}

/** Runs the report command; returns the process exit code. */
export async function runReportCommand(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        out: { type: "string" },
        width: { type: "string" },
        height: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (e) {
    console.error(`report: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (parsed.values.help) {
    console.log(USAGE);
    return 0;
  }
  if (parsed.positionals.length === 0) {
    console.error(`report: name at least one bundle folder\n${USAGE}`);
    return 2;
  }
  try {
    const { FIGURE_SIZE } = await import("../report/figures.ts");
    const size = {
      width: positiveInt(parsed.values.width, "width", FIGURE_SIZE.width),
      height: positiveInt(parsed.values.height, "height", FIGURE_SIZE.height),
    };
    // The report code (and through it chart.js and the canvas) loads only for this command.
    const { writeReport } = await import("../report/report.ts");
    const result = await writeReport(parsed.positionals, { outDir: parsed.values.out, size });
    console.log(`report: ${result.pngs.length} charts in ${result.outDir}`);
    console.log(`report: ${result.htmlPath}`);
    return 0;
  } catch (e) {
    console.error((e as Error).message);
    return 1;
  }
}
