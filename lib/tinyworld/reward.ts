/**
 * R(q, a) for the tiny world: the exact verifier as the task reward of Language Self-Play.
 *
 * Malformed queries. The challenger's reward is -V(q) with V(q) the mean solver reward, so a
 * query whose answers all score 0 looks maximally hard. If unparseable challenger output scored
 * R = 0 it would be the challenger's best move: write garbage, win the game. The default policy
 * "max" therefore gives every answer to a malformed query the maximum reward 1: V(q) = 1, the
 * worst challenger reward, and all G answers tie, so the solver's group-relative advantages are
 * exactly 0 and it learns nothing from the garbage either. "zero" (R = 0 for every answer) is
 * available as an ablation that shows the failure. Well-formed tasks past the hardest level are
 * scored normally: they are valid, verifiable, merely hard; the judge's "in range" criterion is
 * what discourages them in LSP.
 */

import {
  answerHasFormat,
  familyByName,
  normalizeAnswer,
  parseTask,
  verifyAnswer,
} from "./tasks.ts";

/** What R is for an answer to a query that is not a well-formed task. */
export type MalformedQueryPolicy = "max" | "zero";

/** Options of the verifier reward. */
export interface TinyVerifierRewardOptions {
  /** Default "max" (see the module comment for why). */
  malformedQuery?: MalformedQueryPolicy;
  /**
   * Partial credit in 0..1 for answers that are right up to form (case, leading zeros,
   * commas or extra lines): this value instead of 0. Default 0 (exact only).
   */
  partialCredit?: number;
}

/** The verdict on one (query, answer) pair. */
export interface TinyRewardDetail {
  reward: number;
  queryWellFormed: boolean;
  exact: boolean;
}

/** Task reward R(q, a) from the tiny world's exact verifier. */
export class TinyVerifierReward {
  /** Name for logs and manifests. */
  readonly name = "verifier";
  readonly malformedQuery: MalformedQueryPolicy;
  readonly partialCredit: number;

  constructor(options: TinyVerifierRewardOptions = {}) {
    const policy = options.malformedQuery ?? "max";
    if (policy !== "max" && policy !== "zero") {
      throw new Error(
        `verifier reward: malformedQuery must be "max" or "zero", got ${JSON.stringify(policy)}`,
      );
    }
    const partial = options.partialCredit ?? 0;
    if (typeof partial !== "number" || !(partial >= 0 && partial <= 1)) {
      throw new Error(`verifier reward: partialCredit must be in [0, 1], got ${partial}`);
    }
    this.malformedQuery = policy;
    this.partialCredit = partial;
  }

  /** R(q, a) with the reason. */
  detail(query: string, answer: string): TinyRewardDetail {
    const parsed = parseTask(query);
    if (!parsed.ok) {
      return {
        reward: this.malformedQuery === "max" ? 1 : 0,
        queryWellFormed: false,
        exact: false,
      };
    }
    const task = parsed.task;
    if (verifyAnswer(task, answer)) return { reward: 1, queryWellFormed: true, exact: true };
    let reward = 0;
    if (this.partialCredit > 0) {
      const kind = familyByName(task.family).answerKind;
      const firstLine = answer.trim().split("\n")[0].trim();
      if (answerHasFormat(kind, firstLine) && normalizeAnswer(kind, firstLine) === task.answer) {
        reward = this.partialCredit;
      }
    }
    return { reward, queryWellFormed: true, exact: false };
  }

  /** R(q, a). */
  score(query: string, answer: string): number {
    return this.detail(query, answer).reward;
  }

  /** R for every answer of every query: answers[i][j] answers queries[i]. */
  scoreGroups(queries: readonly string[], answers: readonly (readonly string[])[]): number[][] {
    if (queries.length !== answers.length) {
      throw new Error(
        `verifier reward: ${queries.length} queries but ${answers.length} answer groups`,
      );
    }
    return queries.map((q, i) => answers[i].map((a) => this.score(q, a)));
  }
}
