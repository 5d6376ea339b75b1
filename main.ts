/**
 * selfplay's command line: picks the command, runs it, and turns every error into one clear
 * message (stack traces only with SELFPLAY_DEBUG=1).
 *
 * Exit status: 0 success, 1 failure, 2 usage error, 130 interrupted.
 *
 * @module
 */
import { COMMANDS, topUsage } from "./lib/cli/commands.ts";
import { UsageError } from "./lib/cli/command.ts";

/** Runs the CLI on `args` and returns the exit code. */
export async function main(args: string[]): Promise<number> {
  // `deno task` runs in the project root; resolve the user's paths where they typed them.
  const initCwd = Deno.env.get("INIT_CWD");
  if (initCwd) {
    try {
      Deno.chdir(initCwd);
    } catch { /* keep the current directory */ }
  }
  const [name, ...rest] = args;
  if (name === undefined) {
    console.error(topUsage());
    return 2;
  }
  if (name === "--help" || name === "-h" || name === "help") {
    console.log(topUsage());
    return 0;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  try {
    if (!cmd) {
      throw new UsageError(
        name.startsWith("-") ? `unknown option "${name}"` : `unknown command "${name}"`,
      );
    }
    return await cmd.run(rest);
  } catch (e) {
    if (Deno.env.get("SELFPLAY_DEBUG") === "1" && e instanceof Error) console.error(e.stack);
    if (e instanceof UsageError) {
      console.error(`error: ${e.message}\n\n${e.command ? e.command.usage : topUsage()}`);
      return 2;
    }
    const msg = e instanceof Error ? e.message : String(e);
    const known = e instanceof Error &&
      ["ManifestError", "RunSetupError", "GpuUnavailableError"].includes(e.name);
    console.error(
      `error: ${msg}` + (known ? "" : "\n(set SELFPLAY_DEBUG=1 to see where it happened)"),
    );
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
