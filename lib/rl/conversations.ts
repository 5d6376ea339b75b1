/**
 * The two roles of Language Self-Play as conversations (LSP.md, "The game"): the challenger is
 * shown the challenger prompt (with `{task}` and `{template}` filled) as one user turn, the
 * solver is shown a query as an ordinary user turn. Prompts come from the manifest, as inline
 * text or as a file, never from the code.
 *
 * @module
 */
import { PROJECT_ROOT } from "../util/project_path.ts";
import { resolve } from "node:path";
import type { ChatMessage } from "../model/tokenizer.ts";

/** Where a prompt template comes from: inline text or a file (relative to the project root). */
export type PromptSource = { text: string } | { file: string };

/** Reads a prompt template; `where` names the manifest field in errors. */
export async function readPromptSource(
  src: PromptSource,
  where: string,
  root = PROJECT_ROOT,
): Promise<string> {
  if ("text" in src) return src.text;
  const path = resolve(root, src.file);
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`${where}.file: cannot read ${path} (${(e as Error).message})`);
  }
}

/** What fills the challenger prompt: the task name and its template (both may be empty). */
export interface ChallengerSlots {
  task: string;
  template: string;
}

/**
 * Fills `{task}` and `{template}` in one pass, so text inside a slot is never substituted again;
 * other braces (e.g. `{placeholder}` in the prompt's instructions) are left as they are.
 * A template without both slots is refused: the manifest would silently ignore its slots.
 */
export function fillChallengerPrompt(
  template: string,
  slots: ChallengerSlots,
  where = "challenger prompt",
): string {
  for (const slot of ["{task}", "{template}"]) {
    if (!template.includes(slot)) throw new Error(`${where}: missing the ${slot} slot`);
  }
  return template.replace(
    /\{(task|template)\}/g,
    (_, name: string) => name === "task" ? slots.task : slots.template,
  );
}

/**
 * Fills a judge prompt's `{instruction}` and `{response}` slots in one pass (a response that
 * contains "{instruction}" stays as written).
 */
export function fillJudgePrompt(
  template: string,
  instruction: string,
  response: string,
  where = "judge prompt",
): string {
  for (const slot of ["{instruction}", "{response}"]) {
    if (!template.includes(slot)) throw new Error(`${where}: missing the ${slot} slot`);
  }
  return template.replace(
    /\{(instruction|response)\}/g,
    (_, name: string) => name === "instruction" ? instruction : response,
  );
}

/** The challenger's conversation: the filled challenger prompt as the only user turn. */
export function challengerConversation(filledPrompt: string): ChatMessage[] {
  return [{ role: "user", content: filledPrompt }];
}

/** The solver's conversation: the query as an ordinary user turn. */
export function solverConversation(query: string): ChatMessage[] {
  return [{ role: "user", content: query }];
}

/** The judge's conversation: the filled judge prompt as the only user turn. */
export function judgeConversation(
  template: string,
  instruction: string,
  response: string,
): ChatMessage[] {
  return [{ role: "user", content: fillJudgePrompt(template, instruction, response) }];
}
