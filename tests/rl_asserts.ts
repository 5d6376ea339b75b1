// Assertions for the RL tests, on node:assert (no jsr:), in the shape of Deno's std/assert.
import { deepStrictEqual, ok, throws } from "node:assert/strict";

export function assert(cond: unknown, msg?: string): asserts cond {
  ok(cond, msg);
}
export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  deepStrictEqual(actual, expected, msg);
}
export function assertAlmostEquals(actual: number, expected: number, tol = 1e-7): void {
  ok(Math.abs(actual - expected) <= tol, `${actual} is not within ${tol} of ${expected}`);
}
export function assertThrows(
  fn: () => unknown,
  cls: new (...a: never[]) => Error,
  includes: string,
) {
  throws(fn, (e: unknown) => e instanceof cls && (e as Error).message.includes(includes));
}
