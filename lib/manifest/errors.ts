/**
 * The error every manifest problem becomes: it names the file (and the key path when there is
 * one) so the CLI can print it as one clear line.
 *
 * @module
 */

/** A manifest could not be read, merged, overridden or validated. */
export class ManifestError extends Error {
  override name = "ManifestError";
  /** The manifest file the problem is in (or "--set" for command-line overrides). */
  readonly file: string;

  constructor(file: string, message: string) {
    super(`${file}: ${message}`);
    this.file = file;
  }
}
