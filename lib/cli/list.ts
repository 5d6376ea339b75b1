/**
 * `list`: the experiments in experiments/ with their one-line descriptions, and the kinds.
 *
 * @module
 */
import { loadManifest } from "../manifest/load.ts";
import { KINDS } from "./kinds.ts";
import { EXPERIMENTS_DIR } from "../runner/project.ts";
import { type Command, parseCommandArgs } from "./command.ts";

/** The `list` command. */
export const listCommand: Command = {
  name: "list",
  summary: "list the experiments (with a one-line description each) and the experiment kinds",
  usage: `Usage: deno task list

Lists experiments/*.jsonc with their kinds and descriptions (a manifest that does not resolve
is shown with its error), then the experiment kinds this program knows.

Options:
  -h, --help  show this help`,
  async run(args) {
    const p = parseCommandArgs(this, args, {}, 0, 0);
    if (!p) return 0;
    const names: string[] = [];
    try {
      for await (const e of Deno.readDir(EXPERIMENTS_DIR)) {
        if (e.isFile && e.name.endsWith(".jsonc")) names.push(e.name.slice(0, -".jsonc".length));
      }
    } catch { /* no experiments directory: nothing to list */ }
    names.sort();
    const width = Math.max(10, ...names.map((n) => n.length));
    console.log("Experiments (deno task exp <name>):");
    if (names.length === 0) console.log("  (none)");
    for (const name of names) {
      let line: string;
      try {
        const m = loadManifest(name, { experimentsDir: EXPERIMENTS_DIR, kinds: KINDS });
        line = `[${m.kind}] ${m.description}`;
      } catch (e) {
        line = `(invalid: ${(e as Error).message})`;
      }
      console.log(`  ${name.padEnd(width)}  ${line}`);
    }
    console.log("\nKinds:");
    const kw = Math.max(10, ...KINDS.map((k) => k.kind.length));
    for (const k of KINDS) console.log(`  ${k.kind.padEnd(kw)}  ${k.description}`);
    return 0;
  },
};
