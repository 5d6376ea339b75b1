/**
 * What a CLI command is, and the shared argument parsing that turns every bad flag into a
 * usage error (exit 2) and handles `--help`.
 *
 * @module
 */
import { UserError } from "../util/user_error.ts";
import { nearestKey } from "../manifest/suggest.ts";
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

/**
 * Checks every option name before Node's parser sees it, so that a misspelt one gets a clear
 * message with the nearest valid spelling, and joins `--name value` into `--name=value` for
 * string options whose value starts with "-" (a negative number, a text such as "-5"), which
 * the parser would otherwise call ambiguous.
 */
function normalizeArgs(cmd: Command, args: string[], options: Options): string[] {
  const out: string[] = [];
  const shorts = new Map(
    Object.entries(options).filter(([, o]) => o.short).map(([n, o]) => [o.short!, n]),
  );
  const isOption = (a: string) =>
    a.startsWith("--") ? a.slice(2).split("=")[0] in options : shorts.has(a.slice(1));
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--") {
      out.push(...args.slice(i));
      break;
    }
    if (a.startsWith("--")) {
      const name = a.slice(2).split("=")[0];
      if (!(name in options)) {
        const near = nearestKey(name, Object.keys(options), Math.max(2, name.length / 3));
        throw new UsageError(
          `${cmd.name}: unknown option "--${name}"` +
            (near ? ` (did you mean "--${near}"?)` : ""),
          cmd,
        );
      }
      const next = args[i + 1];
      if (
        options[name].type === "string" && !a.includes("=") && next !== undefined &&
        next.startsWith("-") && next !== "--" && !isOption(next)
      ) {
        out.push(`${a}=${next}`);
        i++;
        continue;
      }
    } else if (/^-[A-Za-z]/.test(a) && !shorts.has(a.slice(1, 2))) {
      throw new UsageError(`${cmd.name}: unknown option "${a}"`, cmd);
    }
    out.push(a);
  }
  return out;
}

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
  const all: Options = { ...options, help: { type: "boolean", short: "h" } };
  args = normalizeArgs(cmd, args, all);
  let parsed: Parsed;
  try {
    parsed = parseArgs({
      args,
      options: all,
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
