/**
 * `repro <bundle>`: rerun a completed bundle and check its determinism claim file by file.
 *
 * @module
 */
import { displayPath } from "../manifest/load.ts";
import { formatComparison } from "../repro/compare.ts";
import { REPRODUCTIONS_FILE } from "../bundle/reproductions.ts";
import { reproduceBundle } from "../repro/reproduce.ts";
import { KINDS } from "./kinds.ts";
import { PROJECT_ROOT } from "../runner/project.ts";
import { type Command, parseCommandArgs } from "./command.ts";

/** The `repro` command. */
export const reproCommand: Command = {
  name: "repro",
  summary: "rerun a completed bundle and compare its deterministic files byte for byte",
  usage: `Usage: deno task repro <bundle-dir> [options]

Verifies <bundle-dir>, reruns its resolved manifest.json into a new bundle beside it
(<bundle-dir>-repro-<n>/, never over the original), and compares every file the original's
bundle.json marks deterministic (metrics, samples, eval, checkpoints) by sha256. Prints a table
(file, original sha, new sha, verdict) and appends the verdict to <bundle-dir>/${REPRODUCTIONS_FILE}
(the one file verify accepts beside a sealed bundle's list). Warns when the code version, the
adapter or the inputs differ from the bundle's: its claim is "bitwise on the same adapter".

Options:
  --out DIR   write the new bundle to DIR instead
  -h, --help  show this help

Exit status: 0 every deterministic file matched, 1 a mismatch or a failed rerun, 2 usage error,
130 interrupted.`,
  async run(args) {
    const p = parseCommandArgs(this, args, { out: { type: "string" } }, 1, 1);
    if (!p) return 0;
    const r = await reproduceBundle({
      bundleDir: p.positionals[0],
      kinds: KINDS,
      root: PROJECT_ROOT,
      outDir: p.values.out as string | undefined,
      warn: (msg) => console.error(`warning: ${msg}`),
    });
    const out = displayPath(r.outcome.bundleDir);
    if (r.rows.length > 0) console.log(formatComparison(r.rows));
    if (r.outcome.status !== "completed") {
      console.error(
        `FAILED: the rerun ${r.outcome.status} (${r.outcome.error ?? "no reason given"}); ` +
          `its bundle: ${out}`,
      );
      return r.outcome.status === "interrupted" ? 130 : 1;
    }
    const { matched, compared } = r.record;
    if (r.ok) {
      console.error(
        `REPRODUCED: ${matched}/${compared} deterministic files match; new bundle ${out}`,
      );
      return 0;
    }
    console.error(
      `DIFFERS: ${compared - matched} of ${compared} deterministic files do not match ` +
        `(${r.record.mismatches.join(", ")}); new bundle ${out}`,
    );
    return 1;
  },
};
