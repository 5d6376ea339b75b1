/**
 * Pairwise win rates (AlpacaEval style): a policy output wins when its judge score is higher
 * than the base output's score for the same instruction; ties count half. Reported overall and
 * per subset with the standard error of the mean.
 *
 * @module
 */

/** One judged pair. */
export interface PairOutcome {
  /** Subset name (AlpacaEval's `dataset` field). */
  subset: string;
  policyScore: number;
  baseScore: number;
}

/** Mean, its standard error and the count. */
export interface RateWithError {
  mean: number;
  se: number;
  n: number;
}

/** Win rate overall and per subset, as fractions in [0, 1]. */
export interface WinRates {
  overall: RateWithError;
  perSubset: Record<string, RateWithError>;
  wins: number;
  ties: number;
  losses: number;
}

/** 1 for a win, 0.5 for a tie, 0 for a loss. */
export function pairOutcome(policyScore: number, baseScore: number): number {
  if (policyScore > baseScore) return 1;
  if (policyScore === baseScore) return 0.5;
  return 0;
}

/** Mean and standard error (sample std / sqrt(n); 0 when n < 2). */
export function meanWithError(xs: number[]): RateWithError {
  const n = xs.length;
  if (n === 0) return { mean: NaN, se: NaN, n: 0 };
  const m = xs.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { mean: m, se: 0, n };
  const v = xs.reduce((a, x) => a + (x - m) * (x - m), 0) / (n - 1);
  return { mean: m, se: Math.sqrt(v / n), n };
}

/** Aggregates judged pairs into win rates (subset keys sorted for stable output). */
export function winRates(pairs: PairOutcome[]): WinRates {
  const all: number[] = [];
  const bySubset = new Map<string, number[]>();
  let wins = 0, ties = 0, losses = 0;
  for (const p of pairs) {
    const o = pairOutcome(p.policyScore, p.baseScore);
    if (o === 1) wins++;
    else if (o === 0.5) ties++;
    else losses++;
    all.push(o);
    if (!bySubset.has(p.subset)) bySubset.set(p.subset, []);
    bySubset.get(p.subset)!.push(o);
  }
  const perSubset: Record<string, RateWithError> = {};
  for (const k of [...bySubset.keys()].sort()) perSubset[k] = meanWithError(bySubset.get(k)!);
  return { overall: meanWithError(all), perSubset, wins, ties, losses };
}
