/**
 * `verify <bundle-dir>`: re-hash a bundle and name every mismatch.
 *
 * @module
 */
import { verifyBundle } from "../bundle/verify.ts";
import { type Command, parseCommandArgs } from "./command.ts";

/** The `verify` command. */
export const verifyCommand: Command = {
  name: "verify",
  summary: "re-hash a result bundle and name every file that does not match",
  usage: `Usage: deno task verify <bundle-dir>

Recomputes the size and sha256 of every file listed in <bundle-dir>/bundle.json and the root
hash, and reports files on disk that are not listed. reproductions.jsonl, which \`repro\` adds
to a sealed bundle, is the one unlisted file accepted: each line must be a verdict about this
bundle's root hash. Prints one OK line, or every problem.

Options:
  -h, --help  show this help

Exit status: 0 intact, 1 any mismatch, 2 usage error.`,
  async run(args) {
    const p = parseCommandArgs(this, args, {}, 1, 1);
    if (!p) return 0;
    const dir = p.positionals[0];
    const r = await verifyBundle(dir);
    if (r.ok) {
      console.log(
        `OK ${dir}: ${r.fileCount} files, root ${r.rootHash} (status ${r.index?.status})`,
      );
      return 0;
    }
    console.error(`FAILED ${dir}: ${r.problems.length} problem${r.problems.length > 1 ? "s" : ""}`);
    for (const line of r.problems) console.error(`  ${line}`);
    return 1;
  },
};
