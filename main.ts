/**
 * selfplay's command line: picks the command, runs it, and turns every error into one clear
 * message (stack traces only with SELFPLAY_DEBUG=1).
 *
 * Exit status: 0 success, 1 failure, 2 usage error, 130 interrupted.
 *
 * @module
 */
import { COMMANDS, topUsage, unknownCommandError } from "./lib/cli/commands.ts";
import { UsageError } from "./lib/cli/command.ts";
import { UserError } from "./lib/util/user_error.ts";

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
      throw unknownCommandError(name);
    }
    return await cmd.run(rest);
  } catch (e) {
    return reportError(e);
  }
}

/**
 * Prints an error that reached the top and returns the exit code. A {@link UserError} is one
 * line (its message says what to do); anything else is a bug in selfplay, printed with its
 * stack so that it can be reported.
 */
export function reportError(e: unknown): number {
  const debug = Deno.env.get("SELFPLAY_DEBUG") === "1";
  if (e instanceof UsageError) {
    if (debug) console.error(e.stack);
    console.error(`error: ${e.message}\n\n${e.command ? e.command.usage : topUsage()}`);
    return 2;
  }
  if (e instanceof UserError) {
    if (debug) console.error(e.stack);
    console.error(`error: ${e.message}`);
    return 1;
  }
  const stack = e instanceof Error && e.stack ? e.stack : String(e);
  console.error(
    `error: ${e instanceof Error ? e.message : String(e)}\n${stack}\n` +
      "(an internal error of selfplay, not a problem with your input: please report it with " +
      "the lines above; SELFPLAY_DEBUG=1 also prints the stack of errors inside a run)",
  );
  return 1;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
