/**
 * Pairwise win rates (AlpacaEval style), reported overall and per subset with the standard error
 * of the mean: from judge scores (a policy output wins when its score is higher than the base
 * output's for the same instruction; ties count half) or from soft verdicts (an LLM judge's
 * probability that the policy's output is better, averaged as AlpacaEval's weighted win rate).
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

/** One instruction's soft verdict: P(the policy's output is better), in [0, 1]. */
export interface SoftOutcome {
  subset: string;
  preference: number;
}

/**
 * Win rates from soft verdicts (an LLM judge's probabilities, AlpacaEval's weighted win rate):
 * the mean preference overall and per subset with standard errors; wins, ties and losses count
 * preferences above, at and below 0.5.
 */
export function softWinRates(outcomes: SoftOutcome[]): WinRates {
  const all: number[] = [];
  const bySubset = new Map<string, number[]>();
  let wins = 0, ties = 0, losses = 0;
  for (const o of outcomes) {
    if (!(o.preference >= 0 && o.preference <= 1)) {
      throw new Error(`softWinRates: preference ${o.preference} is not in [0, 1]`);
    }
    if (o.preference > 0.5) wins++;
    else if (o.preference === 0.5) ties++;
    else losses++;
    all.push(o.preference);
    if (!bySubset.has(o.subset)) bySubset.set(o.subset, []);
    bySubset.get(o.subset)!.push(o.preference);
  }
  const perSubset: Record<string, RateWithError> = {};
  for (const k of [...bySubset.keys()].sort()) perSubset[k] = meanWithError(bySubset.get(k)!);
  return { overall: meanWithError(all), perSubset, wins, ties, losses };
}
