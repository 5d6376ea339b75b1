/**
 * Group-relative advantages of Language Self-Play (LSP.md, "One iteration" and "LSP-Zero vs LSP").
 *
 * Inputs are the task rewards R[i][j] of answer j to query i and, for LSP, the quality self-rewards
 * RQ[i][j] from the reference judge. The solver's reward is R + RQ; the challenger's is
 * -V(q_i) + V_Q(q_i). Advantages subtract the mean over the group (answers of one query for the
 * solver, queries of one iteration for the challenger); dividing by the group's standard
 * deviation is an option the paper does not use.
 *
 * @module
 */

/** How advantages are scaled after subtracting the group mean. */
export type AdvantageNormalization = "none" | "std";

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
  /** Share of queries whose G solver rewards are all equal (no learning signal for the solver). */
  zeroVarianceShare: number;
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Population standard deviation. */
export function std(xs: number[]): number {
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) * (x - m), 0) / xs.length);
}

/** Subtracts the mean (and divides by std + eps when asked) within one group. */
export function centre(xs: number[], norm: AdvantageNormalization = "none", eps = 1e-6): number[] {
  const m = mean(xs);
  const s = norm === "std" ? std(xs) + eps : 1;
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
 * Computes LSP (selfReward given) or LSP-Zero (selfReward null) advantages.
 * The same function gives GRPO's solver advantages: ignore `challenger`.
 */
export function lspAdvantages(
  taskReward: number[][],
  selfReward: number[][] | null,
  norm: AdvantageNormalization = "none",
): LspAdvantages {
  checkRect("taskReward", taskReward);
  const N = taskReward.length, G = taskReward[0].length;
  if (selfReward) checkRect("selfReward", selfReward, N, G);
  const queryValue = taskReward.map(mean);
  const selfValue = selfReward ? selfReward.map(mean) : null;
  const solver = taskReward.map((row, i) =>
    centre(row.map((r, j) => r + (selfReward ? selfReward[i][j] : 0)), norm)
  );
  const challengerReward = queryValue.map((v, i) => -v + (selfValue ? selfValue[i] : 0));
  const challenger = centre(challengerReward, norm);
  const solverTotals = taskReward.map((row, i) =>
    row.map((r, j) => r + (selfReward ? selfReward[i][j] : 0))
  );
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
