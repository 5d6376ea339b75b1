/**
 * The task reward R(q, a) of Language Self-Play behind one small interface, so the algorithm
 * and the evaluation never know whether a verifier or a reward model is scoring.
 *
 * Implementations: `verifier` (the tiny world's exact verifier, verifier_reward.ts) and `model`
 * (a LlamaForSequenceClassification reward model on our engine, reward_model.ts).
 *
 * @module
 */

/** One (query, answer) pair to score: the user turn and the assistant's reply. */
export interface RewardItem {
  query: string;
  answer: string;
}

/** A batched task reward: one score per item, in item order. */
export interface TaskReward {
  /** Short name for logs, metrics and manifests ("verifier", "model"). */
  readonly name: string;
  /** Scores every pair; the result has exactly `items.length` finite numbers. */
  score(items: readonly RewardItem[]): Promise<number[]>;
}

/**
 * Scores `items` with `reward` and checks what came back (count and finiteness), so a broken
 * reward fails loudly where it is called instead of poisoning advantages downstream.
 */
export async function scoreChecked(
  reward: TaskReward,
  items: readonly RewardItem[],
): Promise<number[]> {
  const scores = await reward.score(items);
  if (scores.length !== items.length) {
    throw new Error(
      `reward "${reward.name}": ${scores.length} scores for ${items.length} items`,
    );
  }
  scores.forEach((s, i) => {
    if (!Number.isFinite(s)) throw new Error(`reward "${reward.name}": item ${i} scored ${s}`);
  });
  return scores;
}
