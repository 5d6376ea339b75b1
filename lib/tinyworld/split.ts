/**
 * Train/held-out partition of the task space.
 *
 * A task belongs to the held-out split iff a salted hash of its canonical text falls in one
 * bucket out of HELD_OUT_BUCKETS. Training generators reject held-out tasks and the held-out
 * generator accepts only them, so the two sets are disjoint by construction, for any seeds
 * and any number of samples (tests also check it with a hash set).
 */

import { hashText, Rng } from "./prng.ts";
import { FamilyName, generateTask, Task } from "./tasks.ts";

/** One task text in this many goes to the held-out split. */
export const HELD_OUT_BUCKETS = 8;
const SPLIT_SALT = "tinyworld-split-v1|";

/** Which side of the partition a task text is on. */
export type Split = "train" | "heldout";

/** The split that owns the canonical task text `text`. */
export function splitOf(text: string): Split {
  return hashText(SPLIT_SALT + text) % HELD_OUT_BUCKETS === 0 ? "heldout" : "train";
}

/** Generates a task of `family` at `level` that lies in `split` (redraws until it does). */
export function generateTaskIn(split: Split, rng: Rng, family: FamilyName, level: number): Task {
  for (let tries = 0; tries < 10000; tries++) {
    const task = generateTask(rng, family, level);
    if (splitOf(task.text) === split) return task;
  }
  throw new Error(`no ${split} task of ${family} level ${level} after 10000 draws`);
}
