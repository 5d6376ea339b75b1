/**
 * The tiny world's challenger prompt: the paper's four parts (background with two examples;
 * request to write one input for `{task}` that stress-tests another agent; a `{template}` to
 * fill; final remarks: no answer, only the input) in a form short enough for a character model.
 */

import { familyByName, FamilyName } from "./tasks.ts";

/** Default challenger prompt with the `{task}` and `{template}` slots. */
export const TINY_CHALLENGER_PROMPT = "Tasks: reverse: ab -> ba, add: 2 3 -> 5.\n" +
  "Pose one {task} task, easy or hard, to test a solver.\n" +
  "Fill: {template}\n" +
  "No answer, only the task.";

/** What fills the challenger prompt's slots; both empty means "any task, best judgement". */
export interface ChallengerSlots {
  task: string;
  template: string;
}

/** Slots for an open request (the paper's instruction-following setting: both empty). */
export const OPEN_SLOTS: ChallengerSlots = { task: "", template: "" };

/** Slots that ask for one task family, with that family's fill-in template. */
export function familySlots(family: FamilyName): ChallengerSlots {
  return { task: family, template: familyByName(family).template };
}

/**
 * Fills `{task}` and `{template}` in one pass (slot contents are never re-substituted).
 * Throws if the template lacks either slot.
 */
export function renderChallengerPrompt(
  slots: ChallengerSlots,
  template: string = TINY_CHALLENGER_PROMPT,
): string {
  for (const slot of ["{task}", "{template}"]) {
    if (!template.includes(slot)) throw new Error(`challenger prompt: missing the ${slot} slot`);
  }
  return template.replace(
    /\{(task|template)\}/g,
    (_, name: string) => name === "task" ? slots.task : slots.template,
  );
}
