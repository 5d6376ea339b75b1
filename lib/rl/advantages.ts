/**
 * Group-relative advantages of Language Self-Play (LSP.md, "One iteration" and "LSP-Zero vs LSP").
 *
 * Inputs are the task rewards R[i][j] of answer j to query i and, for LSP, the quality self-rewards
 * RQ[i][j] from the reference judge (already scaled by `selfReward.scale`). The solver's reward is
 * R + RQ; the challenger's is -V(q_i) + V_Q(q_i). With the KL in the reward (kl.ts), each
 * sequence's penalty beta * sum_t lr_t is subtracted from its reward first. Advantages subtract
 * the mean over the group (answers of one query for the solver, queries of one iteration for the
 * challenger); dividing by the group's standard deviation is an option the paper does not use and
 * TRL's GRPOTrainer does by default (its `scale_rewards="group"`: torch's sample std, N - 1 in
 * the denominator, plus 1e-4).
 *
 * @module
 */

/** How advantages are scaled after subtracting the group mean. */
export type AdvantageNormalization = "none" | "std";

/** Per-sequence reward penalties (beta * KL, k1 in the reward), subtracted before advantages. */
export interface RewardPenalty {
  /** [i][j]: the penalty of answer j to query i. */
  solver: number[][];
  /** [i]: the penalty of query i (LSP); empty for GRPO. */
  challenger: number[];
}

/** Everything the update and the metrics need from one iteration's rewards. */
export interface LspAdvantages {
  /** A_sol(i,j): solver advantage of answer j to query i. */
  solver: number[][];
  /** A_ch(i): challenger advantage of query i. */
  challenger: number[];
  /** V(q_i) = mean_j R(q_i, a_i^j): the task-reward value of each query. */
  queryValue: number[];
  /** V_Q(q_i) = mean_j R_Q(q_i, a_i^j), or null without self-reward. */
  selfValue: number[] | null;
  /** Challenger reward -V(q_i) (+ V_Q(q_i) with self-reward). */
  challengerReward: number[];
  /**
   * Share of queries whose G solver rewards R + RQ are all equal (no task signal for the solver;
   * a KL penalty may still separate the answers).
   */
  zeroVarianceShare: number;
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Population standard deviation. */
export function std(xs: number[]): number {
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) * (x - m), 0) / xs.length);
}

/** Sample standard deviation (N - 1 in the denominator), as torch's `std()`. */
export function sampleStd(xs: number[]): number {
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) * (x - m), 0) / (xs.length - 1));
}

/**
 * Subtracts the group mean and, for "std", divides by the sample std + eps (TRL's group
 * scaling, eps 1e-4). A group of one has no std: refused.
 */
export function centre(xs: number[], norm: AdvantageNormalization = "none", eps = 1e-4): number[] {
  const m = mean(xs);
  if (norm === "std" && xs.length < 2) throw new Error("centre: std needs at least 2 values");
  const s = norm === "std" ? sampleStd(xs) + eps : 1;
  return xs.map((x) => (x - m) / s);
}

function checkRect(name: string, r: number[][], n?: number, g?: number): void {
  if (r.length === 0) throw new Error(`${name}: no queries`);
  const G = g ?? r[0].length;
  if (n !== undefined && r.length !== n) throw new Error(`${name}: ${r.length} rows, want ${n}`);
  for (const [i, row] of r.entries()) {
    if (row.length !== G || G === 0) {
      throw new Error(`${name}[${i}]: ${row.length} answers, want ${G}`);
    }
    for (const [j, x] of row.entries()) {
      if (!Number.isFinite(x)) throw new Error(`${name}[${i}][${j}] is not a finite number: ${x}`);
    }
  }
}

/**
 * Computes LSP (selfReward given) or LSP-Zero (selfReward null) advantages, with the KL penalty
 * of k1-in-the-reward when given. The same function gives GRPO's solver advantages: ignore
 * `challenger`.
 */
export function lspAdvantages(
  taskReward: number[][],
  selfReward: number[][] | null,
  norm: AdvantageNormalization = "none",
  penalty: RewardPenalty | null = null,
): LspAdvantages {
  checkRect("taskReward", taskReward);
  const N = taskReward.length, G = taskReward[0].length;
  if (selfReward) checkRect("selfReward", selfReward, N, G);
  if (penalty) checkRect("penalty.solver", penalty.solver, N, G);
  const queryValue = taskReward.map(mean);
  const selfValue = selfReward ? selfReward.map(mean) : null;
  const solverTotals = taskReward.map((row, i) =>
    row.map((r, j) => r + (selfReward ? selfReward[i][j] : 0))
  );
  const solver = solverTotals.map((row, i) =>
    centre(penalty ? row.map((x, j) => x - penalty.solver[i][j]) : row, norm)
  );
  const challengerReward = queryValue.map((v, i) =>
    -v + (selfValue ? selfValue[i] : 0) - (penalty?.challenger[i] ?? 0)
  );
  const challenger = centre(challengerReward, norm);
  const zero = solverTotals.filter((row) => row.every((x) => x === row[0])).length;
  return {
    solver,
    challenger,
    queryValue,
    selfValue,
    challengerReward,
    zeroVarianceShare: zero / N,
  };
}
