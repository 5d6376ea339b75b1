/**
 * Learning-rate schedules. Steps are 1-based (the first optimizer step is step 1), matching
 * AdamW's bias-correction step, so a resumed run needs only the step number to continue.
 *
 * @module
 */

/** A learning-rate schedule as written in a manifest. */
export type LrSchedule =
  | { kind: "constant"; lr: number; warmupSteps?: number }
  | { kind: "cosine"; lr: number; warmupSteps?: number; totalSteps: number; minLr?: number };

/**
 * The learning rate at 1-based `step`: linear warm-up from lr/warmupSteps to lr over the first
 * `warmupSteps` steps, then constant, or a cosine decay from lr to minLr reached at `totalSteps`
 * (and held after it).
 */
export function lrAt(s: LrSchedule, step: number): number {
  if (!Number.isInteger(step) || step < 1) throw new Error(`lrAt: step must be >= 1, got ${step}`);
  const warm = s.warmupSteps ?? 0;
  if (step <= warm) return (s.lr * step) / warm;
  if (s.kind === "constant") return s.lr;
  const minLr = s.minLr ?? 0;
  const span = s.totalSteps - warm;
  if (span <= 0) return s.lr;
  const progress = Math.min(1, (step - warm) / span);
  return minLr + 0.5 * (s.lr - minLr) * (1 + Math.cos(Math.PI * progress));
}

/** Checks a schedule, naming the offending field (`where` says which file/field holds it). */
export function validateSchedule(s: LrSchedule, where: string): void {
  const bad = (msg: string) => {
    throw new Error(`${where}: ${msg}`);
  };
  if (!(s.lr >= 0) || !Number.isFinite(s.lr)) bad(`lr must be a non-negative number`);
  const warm = s.warmupSteps ?? 0;
  if (!Number.isInteger(warm) || warm < 0) bad(`warmupSteps must be a non-negative integer`);
  if (s.kind === "cosine") {
    if (!Number.isInteger(s.totalSteps) || s.totalSteps < 1) {
      bad(`totalSteps must be a positive integer`);
    }
    if (s.minLr !== undefined && !(s.minLr >= 0 && s.minLr <= s.lr)) {
      bad(`minLr must lie in [0, lr]`);
    }
  } else if (s.kind !== "constant") {
    bad(`unknown schedule kind ${JSON.stringify((s as { kind: unknown }).kind)}`);
  }
}
