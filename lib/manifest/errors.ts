/**
 * The error every manifest problem becomes: it names the file (and the key path when there is
 * one) so the CLI can print it as one clear line.
 *
 * @module
 */
import { UserError } from "../util/user_error.ts";

/** A manifest could not be read, merged, overridden or validated. */
export class ManifestError extends UserError {
  override name = "ManifestError";
  /** The manifest file the problem is in (or "--set" for command-line overrides). */
  readonly file: string;

  constructor(file: string, message: string) {
    super(`${file}: ${message}`);
    this.file = file;
  }
}
