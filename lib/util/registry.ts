/**
 * A named registry: how a part of the program offers an implementation (a task source, a reward,
 * an evaluation, a dataset generator) to code that knows it only by interface. Names are checked
 * when a manifest is resolved, through {@link Registry.nameSchema}.
 *
 * @module
 */
import { z } from "zod";

/** Items of one kind, by name, in registration order. */
export class Registry<T> {
  /** What an item is, for messages ("evaluation", "task reward"). */
  readonly what: string;
  readonly #items = new Map<string, T>();

  constructor(what: string) {
    this.what = what;
  }

  /** Adds `item` under `name`; a name may be taken once. */
  register(name: string, item: T): void {
    if (this.#items.has(name)) throw new Error(`${this.what} "${name}" is already registered`);
    this.#items.set(name, item);
  }

  has(name: string): boolean {
    return this.#items.has(name);
  }

  /** Registered names, in registration order. */
  names(): string[] {
    return [...this.#items.keys()];
  }

  /** The item called `name`; an unknown name is an error listing the registered ones. */
  get(name: string): T {
    const item = this.#items.get(name);
    if (item === undefined) {
      throw new Error(
        `unknown ${this.what} ${JSON.stringify(name)} (registered: ${
          this.names().join(", ") || "none"
        })`,
      );
    }
    return item;
  }

  /**
   * A manifest field naming one of `builtIns` (handled by the caller itself) or a registered
   * item. It is checked when the manifest is resolved, against what is registered then.
   */
  nameSchema(builtIns: readonly string[] = []): z.ZodType<string> {
    const known = () => [...builtIns, ...this.names()];
    return z.string().refine((v) => known().includes(v), {
      error: () =>
        `Invalid option: expected one of ${known().map((n) => JSON.stringify(n)).join("|")}`,
    });
  }
}
