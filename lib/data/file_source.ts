/**
 * A file an experiment reads (an eval set, a dataset) given directly or through an environment
 * variable, resolved with errors a user can act on: what to download and where to put it.
 *
 * @module
 */
import { resolve } from "node:path";
import { z } from "zod";

/** A file (eval set, dataset) given directly or through an environment variable. */
export const FileSourceSchema = z.strictObject({
  path: z.string().default(""),
  env: z.string().default(""),
  download: z.string().default(""),
});

/** Parsed {@link FileSourceSchema}. */
export type FileSource = z.output<typeof FileSourceSchema>;

/** Whether `path` is a folder, a file, or absent. */
export function pathKind(path: string): "dir" | "file" | null {
  try {
    return Deno.statSync(path).isDirectory ? "dir" : "file";
  } catch {
    return null;
  }
}

/**
 * A path given directly or through an environment variable, made absolute and checked to be a
 * `what`; a missing one is an error saying what to download (`download`) and where.
 */
export function resolveGivenPath(
  given: string,
  env: string,
  download: string,
  field: string,
  what: "folder" | "file",
): string {
  const fix = download
    ? `download ${download} ${
      what === "folder" ? "from Hugging Face into that folder" : "to that path"
    }`
    : `put the ${what} there`;
  let path = given;
  if (!path) {
    const v = env ? Deno.env.get(env) : undefined;
    if (!v) {
      throw new Error(
        `${field}: no ${what} given: set ${env ? `the environment variable ${env} or ` : ""}` +
          `--set ${field}.${what === "folder" ? "dir" : "path"}=PATH and ${fix}`,
      );
    }
    path = v;
  }
  const abs = resolve(path);
  const kind = pathKind(abs);
  if (kind === null) {
    throw new Error(
      `${field}: ${abs} does not exist: ${
        fix.replace("that folder", abs).replace("that path", abs)
      }`,
    );
  }
  if ((kind === "dir") !== (what === "folder")) {
    throw new Error(`${field}: ${abs} is not a ${what}`);
  }
  return abs;
}

/** A file path from a {@link FileSource}; errors say what to download and where. */
export function resolveFileSource(src: FileSource, field: string): string {
  return resolveGivenPath(src.path, src.env, src.download, field, "file");
}
