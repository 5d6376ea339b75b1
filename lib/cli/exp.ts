/**
 * `exp <name|path>`: resolve a manifest and run it into a result bundle.
 *
 * @module
 */
import { canonicalJson } from "../manifest/canonical.ts";
import { displayPath, loadManifest } from "../manifest/load.ts";
import { KINDS } from "./kinds.ts";
import { EXPERIMENTS_DIR, PROJECT_ROOT, RESULTS_DIR } from "../runner/project.ts";
import { plannedTarget, runExperiment } from "../runner/run.ts";
import { type Command, parseCommandArgs } from "./command.ts";

/** The `exp` command. */
export const expCommand: Command = {
  name: "exp",
  summary: "run an experiment manifest into a hashed result bundle",
  usage: `Usage: deno task exp <name|path> [options]

Runs experiments/<name>.jsonc (or a manifest path) and writes its bundle to
results/<name>/<run-id>/, where the run id hashes the resolved manifest, its inputs and the code.

Options:
  --set key.path=value  override a manifest field (repeatable); values parse as numbers,
                        true/false, null, JSON arrays/objects or "strings", else plain text
  --out DIR             write the bundle to DIR instead of results/<name>/<run-id>/
  --resume              accept an already completed bundle (exit 0) or continue an unfinished
                        one when the experiment kind supports it
  --allow-changed-code  with --resume: continue a run that other code started (it is
                        refused otherwise; the bundle records it in resumes.jsonl)
  --force               replace an existing bundle in the target directory
  --no-charts           do not draw the bundle's charts at the end (a sweep's members run so;
                        \`deno task report <bundle>\` draws them any time)
  --dry-run             print the resolved manifest (every default filled in) and exit; on
                        stderr, lsp and grpo runs also print their planned GPU memory, and a
                        sweep lists its members, their resolved manifests and what its
                        launcher would run
  -h, --help            show this help

Exit status: 0 completed, 1 failed, 2 usage error, 130 interrupted (Ctrl-C).
Examples:
  deno task exp gpu-probe
  deno task exp gpu-probe --set timing.repeats=10 --set 'shapes=[[3,5,7]]' --out /tmp/probe`,
  async run(args) {
    const p = parseCommandArgs(
      this,
      args,
      {
        set: { type: "string", multiple: true },
        out: { type: "string" },
        resume: { type: "boolean" },
        force: { type: "boolean" },
        "allow-changed-code": { type: "boolean" },
        "dry-run": { type: "boolean" },
        "no-charts": { type: "boolean" },
      },
      1,
      1,
    );
    if (!p) return 0;
    const manifest = loadManifest(p.positionals[0], {
      experimentsDir: EXPERIMENTS_DIR,
      kinds: KINDS,
      sets: (p.values.set as string[] | undefined) ?? [],
    });
    if (p.values["dry-run"]) {
      console.log(canonicalJson(manifest.resolved, 2));
      // What the kind adds (a sweep's members and scripts) goes to stderr: stdout stays the
      // resolved manifest alone.
      const kind = KINDS.find((k) => k.kind === manifest.kind);
      if (kind?.dryRun) {
        const bundleDir = async () =>
          (await plannedTarget({
            manifest,
            kinds: KINDS,
            root: PROJECT_ROOT,
            resultsDir: RESULTS_DIR,
            outDir: p.values.out as string | undefined,
          })).dir;
        console.error(
          await kind.dryRun(manifest.params, {
            experiment: manifest.name,
            bundleDir,
            projectRoot: PROJECT_ROOT,
          }),
        );
      }
      return 0;
    }
    const outcome = await runExperiment({
      manifest,
      kinds: KINDS,
      root: PROJECT_ROOT,
      resultsDir: RESULTS_DIR,
      outDir: p.values.out as string | undefined,
      resume: Boolean(p.values.resume),
      force: Boolean(p.values.force),
      allowChangedCode: Boolean(p.values["allow-changed-code"]),
      charts: !p.values["no-charts"],
      command: ["exp", ...args],
    });
    const dir = displayPath(outcome.bundleDir);
    if (outcome.alreadyComplete) {
      console.error(`${manifest.name}: run ${outcome.runId} is already complete in ${dir}`);
      console.log(dir);
      return 0;
    }
    if (outcome.status === "completed") {
      console.error(
        `completed: ${dir} (${outcome.index?.files.length} files, root ` +
          `${outcome.index?.rootHash}); check it with \`deno task verify ${dir}\``,
      );
      console.log(dir);
      return 0;
    }
    if (outcome.status === "interrupted") {
      console.error(`interrupted: ${dir} is marked interrupted`);
      return 130;
    }
    console.error(
      `error: ${manifest.name} failed: ${outcome.error}\n(bundle marked failed: ${dir})`,
    );
    return 1;
  },
};
