/**
 * The table of CLI commands. To add one: write lib/cli/<name>.ts exporting a {@link Command},
 * import it here and add it to {@link COMMANDS}.
 *
 * @module
 */
import { type Command, UsageError } from "./command.ts";
import { nearestKey } from "../manifest/suggest.ts";
import { doctorCommand } from "./doctor.ts";
import { expCommand } from "./exp.ts";
import { listCommand } from "./list.ts";
import { modelCommand } from "./model.ts";
import { reportCommand } from "./report.ts";
import { reproCommand } from "./repro.ts";
import { verifyCommand } from "./verify.ts";

/** Every command, in the order the usage shows them. */
export const COMMANDS: readonly Command[] = [
  expCommand,
  verifyCommand,
  reproCommand,
  listCommand,
  reportCommand,
  modelCommand,
  doctorCommand,
];

/** The top-level usage text. */
export function topUsage(): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length));
  return `selfplay: Language Self-Play experiments on WebGPU

Usage: deno task <command> [args]   (or: deno run -A main.ts <command> [args])

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`).join("\n")}

Run a command with --help for its options. Set SELFPLAY_DEBUG=1 to see stack traces.`;
}

/** The usage error for a first word that is no command, with the nearest spelling if close. */
export function unknownCommandError(name: string): UsageError {
  const near = name.startsWith("-")
    ? (nearestKey(name.replace(/^-+/, ""), ["help"], 2) ? "--help" : null)
    : nearestKey(name, COMMANDS.map((c) => c.name), 2);
  return new UsageError(
    (name.startsWith("-") ? `unknown option "${name}"` : `unknown command "${name}"`) +
      (near ? ` (did you mean "${near}"?)` : ""),
  );
}
