/**
 * A file an experiment reads (an eval set, a dataset) given directly or through an environment
 * variable, resolved with errors a user can act on: what to download and where to put it.
 *
 * @module
 */
import { projectPath } from "../util/project_path.ts";
import { resolve } from "node:path";
import { z } from "zod";
import { missingInput } from "../util/missing_inputs.ts";
import { UserError } from "../util/user_error.ts";

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

/** Owners on Hugging Face whose models are gated: a licence to accept and a login first. */
const GATED_OWNERS = new Set(["meta-llama"]);

/** What to do to get `download` into `target` (a folder or a file path), in words. */
function downloadAdvice(download: string, target: string, what: "folder" | "file"): string {
  if (!download) return `put the ${what} there`;
  if (what === "folder" && /^[\w.-]+\/[\w.-]+$/.test(download)) {
    const gated = GATED_OWNERS.has(download.split("/")[0])
      ? ` (a gated model: accept its licence on huggingface.co/${download} and log in with ` +
        "`huggingface-cli login` first)"
      : "";
    return `download ${download} from Hugging Face${gated}: ` +
      `\`huggingface-cli download ${download} --local-dir ${target}\``;
  }
  return `download ${download} to ${target}`;
}

/**
 * A path given directly or through an environment variable, made absolute and checked to be a
 * `what`. A missing one is reported through {@link missingInput} with what to download
 * (`download`) and where, so that a run can name all of them at once; "" is returned then.
 */
export function resolveGivenPath(
  given: string,
  env: string,
  download: string,
  field: string,
  what: "folder" | "file",
): string {
  let path = given;
  if (!path) {
    const v = env ? Deno.env.get(env) : undefined;
    if (!v) {
      const target = env ? `$${env}` : "PATH";
      missingInput(
        `${field}: no ${what} given: set ${env ? `the environment variable ${env} or ` : ""}` +
          `--set ${field}.${what === "folder" ? "dir" : "path"}=PATH, then ` +
          downloadAdvice(download, target, what),
      );
      return "";
    }
    path = v;
  }
  // A path in the manifest is relative to the project root; one in an environment variable, to
  // the folder the command was started from (where the user set it).
  const abs = given ? projectPath(given) : resolve(path);
  const kind = pathKind(abs);
  if (kind === null) {
    missingInput(`${field}: ${abs} does not exist: ${downloadAdvice(download, abs, what)}`);
    return "";
  }
  if ((kind === "dir") !== (what === "folder")) {
    throw new UserError(`${field}: ${abs} is not a ${what}`);
  }
  return abs;
}

/** A file path from a {@link FileSource}; errors say what to download and where. */
export function resolveFileSource(src: FileSource, field: string): string {
  return resolveGivenPath(src.path, src.env, src.download, field, "file");
}
