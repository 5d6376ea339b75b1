/**
 * A run's inputs (weights, datasets) are resolved one by one; a person who has none of them
 * wants to hear about all of them at once, with what to download for each. Code that finds a
 * missing input calls {@link missingInput}: it throws at once, unless the caller is collecting
 * inside {@link collectMissingInputs}, which then throws one error naming every missing input.
 *
 * @module
 */
import { UserError } from "./user_error.ts";

/** Every missing input of a run, one line each. */
export class MissingInputsError extends UserError {
  override name = "MissingInputsError";
  /** One message per missing input. */
  readonly missing: string[];
  constructor(missing: string[]) {
    super(
      missing.length === 1
        ? missing[0]
        : `${missing.length} inputs are missing:\n${missing.map((m) => `  - ${m}`).join("\n")}`,
    );
    this.missing = missing;
  }
}

let collecting: string[] | null = null;

/**
 * Reports a missing input: throws a {@link MissingInputsError} with `message`, or, inside
 * {@link collectMissingInputs}, records it and returns so the caller can go on to the next one.
 */
export function missingInput(message: string): void {
  if (collecting) collecting.push(message);
  else throw new MissingInputsError([message]);
}

/** Runs `fn`, then throws one error naming every input it reported missing (if any). */
export function collectMissingInputs<T>(fn: () => T): T {
  const outer = collecting;
  collecting = [];
  try {
    const value = fn();
    if (collecting.length > 0) throw new MissingInputsError(collecting);
    return value;
  } finally {
    collecting = outer;
  }
}
