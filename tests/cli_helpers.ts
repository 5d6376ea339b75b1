/** Test helper: runs the CLI (main.ts) in a child Deno process. */
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The project root. */
export const ROOT = fileURLToPath(new URL("../", import.meta.url));
/** main.ts. */
export const MAIN = join(ROOT, "main.ts");

/** Runs `main.ts args...`; returns exit code, stdout and stderr (nothing filtered: noise is a bug). */
export async function cli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  const stderr = dec.decode(out.stderr);
  return { code: out.code, stdout: dec.decode(out.stdout), stderr };
}
