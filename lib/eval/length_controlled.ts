/**
 * Length-controlled win rate, AlpacaEval 2.0's GLM (tatsu-lab/alpaca_eval,
 * `src/alpaca_eval/metrics/glm_winrate.py`), fitted here in TypeScript.
 *
 * The model: the probability that the model's output beats the baseline's on instruction i is
 * `sigmoid(w_len * tanh(std_delta_len_i) + w_diff * instruction_difficulty_i + w_model)`, with
 * no intercept (AlpacaEval's formula `np.tanh(std_delta_len) + instruction_difficulty +
 * not_gamed_baseline.astype(float) - 1`; the last feature is the constant 1, the model term).
 * `delta_len` is the baseline's output length minus the model's, in characters (Python's
 * `len`, code points), divided by its sample standard deviation over the eval set. The target
 * is the judge's soft preference in [0, 1], fitted with the log loss on soft labels (AlpacaEval
 * duplicates each row with labels 1 and 0 weighted by p and 1 - p: the same loss).
 *
 * The fit is AlpacaEval's `LogisticRegressionCV(penalty="l1", fit_intercept=False, Cs=10,
 * cv=GroupKFold(5))`: the objective `||w||_1 + C * sum_i loss_i`, C chosen from
 * `logspace(-4, 4, 10)` by the mean held-out log loss over 5 folds of instructions, then
 * refitted on every instruction. Fold k holds instructions i with i mod 5 = k (GroupKFold's
 * assignment for equal-sized groups is round-robin too). With fewer instructions than folds,
 * C = 100 without cross-validation (AlpacaEval's `n_splits = 0` path).
 *
 * The length-controlled win rate is the mean predicted preference with the length term removed
 * (`std_delta_len = 0`), overall and per subset. Two standard errors: `se`, the delta method
 * over the fit's sandwich covariance (the L1 penalty ignored), and `seAlpacaEval`, AlpacaEval's
 * `lc_standard_error` (the standard error of the mean of the per-instruction predictions, which
 * is 0 when there is no instruction term: it ignores the uncertainty of the fit).
 *
 * What we cannot follow: AlpacaEval's default (`length_controlled_v1`) also regularises towards
 * two "gamed" baselines whose annotations (`df_gamed.csv`) exist only for its own baseline and
 * annotator, so we fit its `length_controlled_noreg` form; and its instruction difficulties are
 * a precomputed per-instruction table of the 805 AlpacaEval instructions. Given such a table the
 * instruction term is fitted; without one it is left out (`length_controlled_minimal`), and the
 * result says which form was fitted.
 *
 * @module
 */

/** One judged instruction. */
export interface LcObservation {
  /** The judge's probability that the model's output is better, in [0, 1]. */
  preference: number;
  /** Output lengths in characters (code points, as Python's `len`). */
  modelChars: number;
  baselineChars: number;
  /** Subset name (AlpacaEval's `dataset`). */
  subset: string;
  /** AlpacaEval's instruction difficulty, when a table is given (all rows or none). */
  difficulty?: number;
}

/** A rate with its standard errors. */
export interface LcRate {
  mean: number;
  /** Delta-method standard error over the fit's sandwich covariance (null when singular). */
  se: number | null;
  /** AlpacaEval's lc_standard_error: the standard error of the mean of the predictions. */
  seAlpacaEval: number;
  n: number;
}

/** A fitted coefficient with its sandwich standard error. */
export interface LcCoefficient {
  value: number;
  se: number | null;
}

/** The fitted GLM and the length-controlled win rates. */
export interface LengthControlledResult {
  /** AlpacaEval's name of the form fitted. */
  glm: "length_controlled_noreg" | "length_controlled_minimal";
  formula: string;
  /** Coefficients under AlpacaEval's feature names (the weights its CSVs hold). */
  coefficients: Record<string, LcCoefficient>;
  /** The chosen inverse regularisation strength. */
  C: number;
  /** The cross-validation, or null when there were fewer instructions than folds. */
  cv: { folds: number; Cs: number[]; meanLogLoss: number[] } | null;
  /** Sample standard deviation of the length differences, in characters. */
  deltaLenStd: number;
  winRate: LcRate;
  perSubset: Record<string, LcRate>;
}

/** AlpacaEval's feature names. */
export const LC_FEATURES = {
  length: "np.tanh(std_delta_len)",
  difficulty: "instruction_difficulty",
  model: "not_gamed_baseline.astype(float)",
} as const;

/** Folds of the cross-validation (AlpacaEval: 5). */
export const LC_FOLDS = 5;
/** C without cross-validation (sklearn LogisticRegression's C in AlpacaEval's code). */
export const LC_C_WITHOUT_CV = 100;

/** sklearn LogisticRegressionCV's default grid, `np.logspace(-4, 4, 10)`. */
export function defaultCs(): number[] {
  return Array.from({ length: 10 }, (_, k) => Math.pow(10, -4 + (8 / 9) * k));
}

/** Python's `len` of a string: code points, not UTF-16 units. */
export function pythonLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

const sigmoid = (z: number): number =>
  z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
const softplus = (z: number): number => Math.max(z, 0) + Math.log1p(Math.exp(-Math.abs(z)));
const dot = (a: readonly number[], b: readonly number[]): number => {
  let s = 0;
  for (let j = 0; j < a.length; j++) s += a[j] * b[j];
  return s;
};

/** Soft-label log loss of one row: -(y log p + (1 - y) log(1 - p)) at logit z. */
function rowLoss(z: number, y: number): number {
  return y * softplus(-z) + (1 - y) * softplus(z);
}

/** The objective `||w||_1 + C * sum loss`. */
function objective(X: readonly number[][], y: readonly number[], w: number[], C: number): number {
  let loss = 0;
  for (let i = 0; i < X.length; i++) loss += rowLoss(dot(X[i], w), y[i]);
  return w.reduce((a, v) => a + Math.abs(v), 0) + C * loss;
}

/**
 * Minimises `||w||_1 + C * sum_i loss_i(w)` (soft-label logistic loss, no intercept) by proximal
 * Newton: each step solves the L1 problem on the loss's quadratic model by cyclic coordinate
 * descent, then backtracks until the objective falls enough. Deterministic (fixed orders, f64).
 */
export function fitL1Logistic(X: readonly number[][], y: readonly number[], C: number): number[] {
  const n = X.length, d = n > 0 ? X[0].length : 0;
  if (n === 0) throw new Error("length-controlled fit: no rows");
  let w = new Array<number>(d).fill(0);
  let F = objective(X, y, w, C);
  for (let outer = 0; outer < 500; outer++) {
    const g = new Array<number>(d).fill(0);
    const H = Array.from({ length: d }, () => new Array<number>(d).fill(0));
    for (let i = 0; i < n; i++) {
      const s = sigmoid(dot(X[i], w)), r = C * (s - y[i]), h = C * s * (1 - s);
      for (let j = 0; j < d; j++) {
        g[j] += r * X[i][j];
        for (let k = 0; k < d; k++) H[j][k] += h * X[i][j] * X[i][k];
      }
    }
    const step = new Array<number>(d).fill(0);
    for (let sweep = 0; sweep < 1000; sweep++) {
      let change = 0;
      for (let j = 0; j < d; j++) {
        const a = H[j][j];
        if (!(a > 0)) {
          // A feature that is zero on every row: its coefficient stays at the penalty's 0.
          step[j] = -w[j];
          continue;
        }
        let c1 = g[j];
        for (let k = 0; k < d; k++) if (k !== j) c1 += H[j][k] * step[k];
        const v = w[j] - c1 / a;
        const u = Math.sign(v) * Math.max(Math.abs(v) - 1 / a, 0);
        change = Math.max(change, Math.abs(u - w[j] - step[j]));
        step[j] = u - w[j];
      }
      if (change <= 1e-15 * (1 + Math.max(...w.map(Math.abs)))) break;
    }
    const l1 = (v: number[]) => v.reduce((a, x) => a + Math.abs(x), 0);
    const decrease = dot(g, step) + l1(w.map((v, j) => v + step[j])) - l1(w);
    if (!(decrease < -1e-13 * (1 + Math.abs(F)))) break;
    let t = 1, next = w, Fnext = F;
    for (let k = 0; k < 60; k++, t /= 2) {
      next = w.map((v, j) => v + t * step[j]);
      Fnext = objective(X, y, next, C);
      if (Fnext <= F + 0.01 * t * decrease) break;
    }
    if (!(Fnext < F)) break;
    const moved = Math.max(...next.map((v, j) => Math.abs(v - w[j])));
    w = next;
    F = Fnext;
    if (moved <= 1e-12 * (1 + Math.max(...w.map(Math.abs)))) break;
  }
  return w;
}

/** Mean soft-label log loss of held-out rows, predictions clipped as sklearn's log_loss. */
function heldOutLogLoss(X: readonly number[][], y: readonly number[], w: number[]): number {
  const eps = 1e-15;
  let s = 0;
  for (let i = 0; i < X.length; i++) {
    const p = Math.min(Math.max(sigmoid(dot(X[i], w)), eps), 1 - eps);
    s -= y[i] * Math.log(p) + (1 - y[i]) * Math.log(1 - p);
  }
  return s / X.length;
}

/** Solves A x = b (Gauss-Jordan, partial pivoting); null when A is singular. */
function invert(A: number[][]): number[][] | null {
  const d = A.length;
  const M = A.map((row, i) => [...row, ...Array.from({ length: d }, (_, k) => (k === i ? 1 : 0))]);
  const scale = Math.max(1e-300, ...A.map((r) => Math.max(...r.map(Math.abs))));
  for (let c = 0; c < d; c++) {
    let p = c;
    for (let r = c + 1; r < d; r++) if (Math.abs(M[r][c]) > Math.abs(M[p][c])) p = r;
    if (Math.abs(M[p][c]) <= 1e-12 * scale) return null;
    [M[c], M[p]] = [M[p], M[c]];
    const piv = M[c][c];
    for (let k = 0; k < 2 * d; k++) M[c][k] /= piv;
    for (let r = 0; r < d; r++) {
      if (r === c) continue;
      const f = M[r][c];
      if (f !== 0) { for (let k = 0; k < 2 * d; k++) M[r][k] -= f * M[c][k]; }
    }
  }
  return M.map((row) => row.slice(d));
}

/**
 * Sandwich covariance of the fitted coefficients, `H^-1 B H^-1` with `H = sum s(1-s) x x^T`
 * and `B = sum (s - y)^2 x x^T`, over the features that are not zero on every row (the others
 * get covariance 0); null when H is singular on them.
 */
export function sandwichCovariance(
  X: readonly number[][],
  y: readonly number[],
  w: readonly number[],
): number[][] | null {
  const d = w.length;
  const active = [...Array(d).keys()].filter((j) => X.some((x) => x[j] !== 0));
  const m = active.length;
  const H = Array.from({ length: m }, () => new Array<number>(m).fill(0));
  const B = Array.from({ length: m }, () => new Array<number>(m).fill(0));
  for (let i = 0; i < X.length; i++) {
    const s = sigmoid(dot(X[i], w)), r2 = (s - y[i]) ** 2, h = s * (1 - s);
    for (let a = 0; a < m; a++) {
      for (let b = 0; b < m; b++) {
        const xx = X[i][active[a]] * X[i][active[b]];
        H[a][b] += h * xx;
        B[a][b] += r2 * xx;
      }
    }
  }
  const Hi = invert(H);
  if (!Hi) return null;
  const HB = Hi.map((row) => B[0].map((_, c) => row.reduce((s, v, k) => s + v * B[k][c], 0)));
  const cov = HB.map((row) => Hi[0].map((_, c) => row.reduce((s, v, k) => s + v * Hi[k][c], 0)));
  const full = Array.from({ length: d }, () => new Array<number>(d).fill(0));
  active.forEach((ja, a) => active.forEach((jb, b) => (full[ja][jb] = cov[a][b])));
  return full;
}

/** Sample standard error of the mean (0 when n < 2), as pandas' `sem`. */
function sem(xs: readonly number[]): number {
  const n = xs.length;
  if (n < 2) return 0;
  const m = xs.reduce((a, b) => a + b, 0) / n;
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (n - 1) / n);
}

/** The mean prediction over `rows` of `Xc` (length term removed) with both standard errors. */
function rateOver(
  Xc: readonly number[][],
  rows: readonly number[],
  w: readonly number[],
  cov: number[][] | null,
): LcRate {
  const d = w.length;
  const preds = rows.map((i) => sigmoid(dot(Xc[i], w)));
  const grad = new Array<number>(d).fill(0);
  for (const i of rows) {
    const s = sigmoid(dot(Xc[i], w));
    for (let j = 0; j < d; j++) grad[j] += (s * (1 - s) * Xc[i][j]) / rows.length;
  }
  let se: number | null = null;
  if (cov) {
    let v = 0;
    for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) v += grad[a] * cov[a][b] * grad[b];
    se = Math.sqrt(Math.max(v, 0));
  }
  return {
    mean: preds.reduce((a, b) => a + b, 0) / rows.length,
    se,
    seAlpacaEval: sem(preds),
    n: rows.length,
  };
}

/** Options of {@link lengthControlledWinRate}. */
export interface LcOptions {
  /** The grid of C (default sklearn's `logspace(-4, 4, 10)`). */
  Cs?: number[];
  /** Cross-validation folds (default 5). */
  folds?: number;
}

/**
 * The design matrix of AlpacaEval's formula: rows [tanh(std_delta_len), difficulty?, 1], and
 * the standard deviation of the character length differences (baseline minus model).
 */
export function lcDesign(obs: readonly LcObservation[]): { X: number[][]; deltaLenStd: number } {
  const withDifficulty = obs.length > 0 && obs[0].difficulty !== undefined;
  obs.forEach((o, i) => {
    if ((o.difficulty !== undefined) !== withDifficulty) {
      throw new Error(`length-controlled fit: row ${i} differs from row 0 in having a difficulty`);
    }
    if (!(o.preference >= 0 && o.preference <= 1)) {
      throw new Error(
        `length-controlled fit: row ${i} has preference ${o.preference}, not in [0, 1]`,
      );
    }
    if (withDifficulty && !Number.isFinite(o.difficulty!)) {
      throw new Error(`length-controlled fit: row ${i} has difficulty ${o.difficulty}`);
    }
  });
  const delta = obs.map((o) => o.baselineChars - o.modelChars);
  const n = delta.length;
  const mean = delta.reduce((a, b) => a + b, 0) / n;
  const std = n < 2 ? 0 : Math.sqrt(delta.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1));
  // With no spread in lengths the length term cannot be told from the model term: leave it 0.
  const X = obs.map((o, i) => {
    const len = std > 0 ? Math.tanh(delta[i] / std) : 0;
    return withDifficulty ? [len, o.difficulty!, 1] : [len, 1];
  });
  return { X, deltaLenStd: std };
}

/** Fits AlpacaEval's length-controlled GLM to judged instructions; see the module doc. */
export function lengthControlledWinRate(
  obs: readonly LcObservation[],
  opts: LcOptions = {},
): LengthControlledResult {
  if (obs.length === 0) throw new Error("length-controlled fit: no judged instructions");
  const { X, deltaLenStd } = lcDesign(obs);
  const y = obs.map((o) => o.preference);
  const withDifficulty = X[0].length === 3;
  const names = withDifficulty
    ? [LC_FEATURES.length, LC_FEATURES.difficulty, LC_FEATURES.model]
    : [LC_FEATURES.length, LC_FEATURES.model];
  const folds = opts.folds ?? LC_FOLDS;
  const Cs = opts.Cs ?? defaultCs();

  let C = LC_C_WITHOUT_CV;
  let cv: LengthControlledResult["cv"] = null;
  if (obs.length >= folds) {
    const meanLogLoss = Cs.map((c) => {
      let total = 0;
      for (let k = 0; k < folds; k++) {
        const train = X.map((_, i) => i).filter((i) => i % folds !== k);
        const test = X.map((_, i) => i).filter((i) => i % folds === k);
        const w = fitL1Logistic(train.map((i) => X[i]), train.map((i) => y[i]), c);
        total += heldOutLogLoss(test.map((i) => X[i]), test.map((i) => y[i]), w);
      }
      return total / folds;
    });
    let best = 0;
    for (let k = 1; k < Cs.length; k++) if (meanLogLoss[k] < meanLogLoss[best]) best = k;
    C = Cs[best];
    cv = { folds, Cs, meanLogLoss };
  }
  const w = fitL1Logistic(X, y, C);
  const cov = sandwichCovariance(X, y, w);
  const coefficients: Record<string, LcCoefficient> = {};
  names.forEach((name, j) => {
    coefficients[name] = { value: w[j], se: cov ? Math.sqrt(Math.max(cov[j][j], 0)) : null };
  });
  // The length-controlled prediction: the same rows with std_delta_len = 0 (tanh(0) = 0).
  const Xc = X.map((x) => [0, ...x.slice(1)]);
  const all = X.map((_, i) => i);
  const bySubset = new Map<string, number[]>();
  obs.forEach((o, i) => {
    if (!bySubset.has(o.subset)) bySubset.set(o.subset, []);
    bySubset.get(o.subset)!.push(i);
  });
  const perSubset: Record<string, LcRate> = {};
  for (const s of [...bySubset.keys()].sort()) {
    perSubset[s] = rateOver(Xc, bySubset.get(s)!, w, cov);
  }
  return {
    glm: withDifficulty ? "length_controlled_noreg" : "length_controlled_minimal",
    formula: withDifficulty
      ? "np.tanh(std_delta_len) + instruction_difficulty + not_gamed_baseline.astype(float) - 1"
      : "np.tanh(std_delta_len) + not_gamed_baseline.astype(float) - 1",
    coefficients,
    C,
    cv,
    deltaLenStd,
    winRate: rateOver(Xc, all, w, cov),
    perSubset,
  };
}
