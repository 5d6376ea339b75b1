/**
 * The task reward R(q, a) of Language Self-Play behind one small interface, so the algorithm
 * and the evaluation never know whether a verifier or a reward model is scoring.
 *
 * Implementations: `model` (a LlamaForSequenceClassification reward model on our engine,
 * reward_model.ts) is built in; others (the tiny world's exact verifier) are registered in
 * {@link TASK_REWARDS} by the part of the program that provides them.
 *
 * @module
 */
import { Registry } from "../util/registry.ts";

/** One (query, answer) pair to score: the user turn and the assistant's reply. */
export interface RewardItem {
  query: string;
  answer: string;
}

/** What a reward that knows the task format can tell about a query by itself. */
export interface QueryValidity {
  /** The query is a task the reward can score. */
  wellFormed: boolean;
  /** ... and within the difficulty range the world defines. */
  inRange: boolean;
}

/** A batched task reward: one score per item, in item order. */
export interface TaskReward {
  /** Short name for logs, metrics and manifests ("verifier", "model"). */
  readonly name: string;
  /** Scores every pair; the result has exactly `items.length` finite numbers. */
  score(items: readonly RewardItem[]): Promise<number[]>;
  /**
   * Judges the challenger's queries themselves, where the reward can tell (a verifier can, a
   * reward model cannot): one verdict per query, for the drift metrics.
   */
  queryValidity?(queries: readonly string[]): QueryValidity[];
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

/**
 * Builds a task reward from the manifest's `reward` section (each implementation reads the
 * fields it owns; the schema has already validated them).
 */
export type TaskRewardFactory = (section: Readonly<Record<string, unknown>>) => TaskReward;

/** Task rewards other parts of the program provide, by the name a `reward.kind` gives. */
export const TASK_REWARDS: Registry<TaskRewardFactory> = new Registry<TaskRewardFactory>(
  "task reward",
);
