/**
 * The `verifier` task reward: the tiny world's exact verifier (TinyVerifierReward, which owns
 * the malformed-query policy and partial credit) behind the batched {@link TaskReward} interface.
 *
 * @module
 */
import { TinyVerifierReward, type TinyVerifierRewardOptions } from "./reward.ts";
import type { QueryValidity, RewardItem, TaskReward } from "../rewards/reward.ts";
import { MAX_LEVEL, parseTask } from "./tasks.ts";

/** R(q, a) from the tiny world's verifier, scored item by item (pure CPU, exact). */
export class VerifierTaskReward implements TaskReward {
  readonly name = "verifier";
  /** The wrapped verifier (its options decide malformed queries and partial credit). */
  readonly verifier: TinyVerifierReward;

  /** Wraps an existing verifier, or builds one from its options. */
  constructor(verifier: TinyVerifierReward | TinyVerifierRewardOptions = {}) {
    this.verifier = verifier instanceof TinyVerifierReward
      ? verifier
      : new TinyVerifierReward(verifier);
  }

  /** One reward per item: 1 for an exact answer, partial credit or 0 otherwise. */
  score(items: readonly RewardItem[]): Promise<number[]> {
    return Promise.resolve(items.map((it) => this.verifier.score(it.query, it.answer)));
  }

  /** A query is well formed when it parses as a task, in range when its level is at most 5. */
  queryValidity(queries: readonly string[]): QueryValidity[] {
    return queries.map((q) => {
      const p = parseTask(q);
      return { wellFormed: p.ok, inRange: p.ok && p.task.level <= MAX_LEVEL };
    });
  }
}
