/**
 * Reading a JSON file with errors that name it: the one helper behind every "read this config,
 * state or record file" in the program. A caller passes its own error class where the failure
 * means something specific (a malformed model file, a corrupt checkpoint).
 *
 * @module
 */
import { UserError } from "./user_error.ts";

/** A JSON file that cannot be read or parsed; the message names the file. */
export class JsonFileError extends UserError {
  override name = "JsonFileError";
}

/** Makes the error thrown for a bad file from its message. */
export type ErrorFactory = (message: string) => Error;

const jsonFileError: ErrorFactory = (m) => new JsonFileError(m);

function parse(text: string, path: string, makeError: ErrorFactory): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    // V8 quotes a snippet of the text ('"root:x:0:0"... is not valid JSON'): never echo it.
    const why = (e as Error).message.replace(/, ".*"(\.\.\.)? is not valid JSON$/s, "");
    throw makeError(`${path}: invalid JSON (${why})`);
  }
}

/** Reads and parses `path`; a missing, unreadable or invalid file throws `makeError(message)`. */
export async function readJsonFile(
  path: string,
  makeError: ErrorFactory = jsonFileError,
): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw makeError(`${path}: cannot read (${(e as Error).message})`);
  }
  return parse(text, path, makeError);
}

/** As {@link readJsonFile}, but a file that does not exist gives undefined. */
export async function readJsonFileIfPresent(
  path: string,
  makeError: ErrorFactory = jsonFileError,
): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw makeError(`${path}: cannot read (${(e as Error).message})`);
  }
  return parse(text, path, makeError);
}

/**
 * Best effort, for probing state files whose absence or damage the caller handles (a bundle's
 * status.json): the parsed value, or undefined when the file is missing, unreadable or invalid.
 */
export async function tryReadJson(path: string): Promise<unknown> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch {
    return undefined;
  }
}
