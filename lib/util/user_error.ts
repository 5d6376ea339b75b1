/**
 * The base of every error a person can act on (a bad manifest, a missing input, a taken folder,
 * a malformed file): main.ts prints it as one line, with no stack and no debug hint. Anything
 * else that reaches main.ts is a bug in selfplay and is printed with its stack.
 *
 * A leaf module: every part of the program may import it.
 *
 * @module
 */

/** An error whose message alone tells the user what went wrong, where, and how to fix it. */
export class UserError extends Error {
  override name = "UserError";
  /**
   * Whether continuing a failed run with `--resume` can get past this error (a full disk, a
   * missing driver); false for errors in the run's own inputs, which a resume would meet again.
   */
  readonly resumeHelps: boolean = false;
}
