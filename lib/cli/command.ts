/**
 * What a CLI command is, and the shared argument parsing that turns every bad flag into a
 * usage error (exit 2) and handles `--help`.
 *
 * @module
 */
import { UserError } from "../util/user_error.ts";
import { parseArgs, type ParseArgsConfig } from "node:util";

/** One subcommand of `main.ts`. Register it in lib/cli/commands.ts. */
export interface Command {
  /** The word typed after `main.ts` (and the deno task name where there is one). */
  readonly name: string;
  /** One line for the top-level usage. */
  readonly summary: string;
  /** The command's full help text (shown by `--help` and after a usage error). */
  readonly usage: string;
  /** Runs the command with the arguments after its name; returns the exit code. */
  run(args: string[]): Promise<number>;
}

/** Wrong use of a command: main.ts prints the message and the command's usage, exits 2. */
export class UsageError extends UserError {
  override name = "UsageError";
  /** The command whose usage to print (null: the top-level usage). */
  readonly command: Command | null;
  constructor(message: string, command: Command | null = null) {
    super(message);
    this.command = command;
  }
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/** Parsed values and positionals of a command line. */
export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

/**
 * Parses `args` strictly against `options` (a `--help`/`-h` flag is added). Returns null after
 * printing the usage when help was asked for. Throws {@link UsageError} for unknown flags,
 * missing values, and a positional count outside `[minPos, maxPos]`.
 */
export function parseCommandArgs(
  cmd: Command,
  args: string[],
  options: Options,
  minPos: number,
  maxPos: number,
): Parsed | null {
  let parsed: Parsed;
  try {
    parsed = parseArgs({
      args,
      options: { ...options, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    }) as Parsed;
  } catch (e) {
    throw new UsageError(`${cmd.name}: ${(e as Error).message.split("\n")[0]}`, cmd);
  }
  if (parsed.values.help) {
    console.log(cmd.usage);
    return null;
  }
  const n = parsed.positionals.length;
  if (n < minPos) throw new UsageError(`${cmd.name}: missing argument`, cmd);
  if (n > maxPos) {
    throw new UsageError(`${cmd.name}: unexpected argument "${parsed.positionals[maxPos]}"`, cmd);
  }
  return parsed;
}
