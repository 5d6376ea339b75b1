import assert from "node:assert/strict";
import {
  defaultCs,
  fitL1Logistic,
  lcDesign,
  type LcObservation,
  lengthControlledWinRate,
  pythonLength,
} from "../lib/eval/length_controlled.ts";

/** A seeded uniform in [0, 1) (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function normal(u: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

/**
 * Synthetic judged instructions from known coefficients: length differences, difficulties and
 * preferences drawn from AlpacaEval's model itself. `hard`: Bernoulli labels instead of the
 * exact probabilities; `verbosity`: how many characters longer the model's outputs are on average.
 */
function synthetic(
  n: number,
  w: { length: number; difficulty: number; model: number },
  seed: number,
  hard = false,
  verbosity = 0,
): LcObservation[] {
  const u = rng(seed);
  const base = Array.from({ length: n }, () => 200 + Math.floor(400 * u()));
  const model = base.map((b) => Math.max(1, Math.round(b + verbosity + 150 * normal(u))));
  const diff = Array.from({ length: n }, () => normal(u));
  const rows: LcObservation[] = base.map((b, i) => ({
    preference: 0,
    baselineChars: b,
    modelChars: model[i],
    subset: ["helpful_base", "koala", "oasst"][i % 3],
    difficulty: diff[i],
  }));
  const { X } = lcDesign(rows);
  return rows.map((r, i) => {
    const p = sigmoid(w.length * X[i][0] + w.difficulty * X[i][1] + w.model * X[i][2]);
    return { ...r, preference: hard ? (u() < p ? 1 : 0) : p };
  });
}

Deno.test("length-controlled GLM recovers known coefficients from exact preferences", () => {
  const truth = { length: -0.9, difficulty: 0.5, model: 0.3 };
  const obs = synthetic(2000, truth, 1);
  const r = lengthControlledWinRate(obs);
  assert.equal(r.glm, "length_controlled_noreg");
  const c = r.coefficients;
  assert.ok(Math.abs(c["np.tanh(std_delta_len)"].value - truth.length) < 1e-3, JSON.stringify(c));
  assert.ok(Math.abs(c["instruction_difficulty"].value - truth.difficulty) < 1e-3);
  assert.ok(Math.abs(c["not_gamed_baseline.astype(float)"].value - truth.model) < 1e-3);
  // Exact soft labels: cross-validation prefers the weakest penalty on the grid.
  assert.equal(r.C, defaultCs()[9]);
  // LC is the mean prediction with the length term removed, computed from the truth here.
  const { X } = lcDesign(obs);
  const want = X.reduce((a, x) => a + sigmoid(truth.difficulty * x[1] + truth.model), 0) /
    obs.length;
  assert.ok(Math.abs(r.winRate.mean - want) < 1e-4, `${r.winRate.mean} vs ${want}`);
  // Noise-free labels: the sandwich standard errors vanish; AlpacaEval's does not (it is the
  // spread of the per-instruction predictions).
  assert.ok(r.winRate.se !== null && r.winRate.se < 1e-3);
  assert.ok(r.winRate.seAlpacaEval > 0.001);
  assert.deepEqual(Object.keys(r.perSubset), ["helpful_base", "koala", "oasst"]);
  assert.equal(r.perSubset.koala.n, 667);
});

Deno.test("length-controlled GLM recovers known coefficients from Bernoulli labels within their SEs", () => {
  const truth = { length: -1.2, difficulty: 0.4, model: -0.5 };
  const obs = synthetic(6000, truth, 2, true, 120);
  const r = lengthControlledWinRate(obs);
  for (
    const [name, t] of [
      ["np.tanh(std_delta_len)", truth.length],
      ["instruction_difficulty", truth.difficulty],
      ["not_gamed_baseline.astype(float)", truth.model],
    ] as const
  ) {
    const c = r.coefficients[name];
    assert.ok(c.se !== null && c.se > 0 && c.se < 0.1, `${name}: ${JSON.stringify(c)}`);
    assert.ok(Math.abs(c.value - t) < 4 * c.se!, `${name}: ${c.value} vs ${t} (se ${c.se})`);
  }
  // The raw win rate carries the length effect; LC removes it (verbose models are not favoured).
  const raw = obs.reduce((a, o) => a + o.preference, 0) / obs.length;
  const { X } = lcDesign(obs);
  const want = X.reduce((a, x) => a + sigmoid(truth.difficulty * x[1] + truth.model), 0) /
    obs.length;
  assert.ok(Math.abs(r.winRate.mean - want) < 3 * r.winRate.se!, `${r.winRate.mean} vs ${want}`);
  assert.ok(Math.abs(raw - want) > 3 * r.winRate.se!, "the length effect should be visible");
});

Deno.test("length-controlled GLM without instruction difficulties: the minimal form", () => {
  const truth = { length: 0.8, difficulty: 0, model: 0.6 };
  const obs = synthetic(1500, truth, 3).map(({ difficulty: _, ...o }) => o);
  const r = lengthControlledWinRate(obs);
  assert.equal(r.glm, "length_controlled_minimal");
  assert.deepEqual(Object.keys(r.coefficients), [
    "np.tanh(std_delta_len)",
    "not_gamed_baseline.astype(float)",
  ]);
  assert.ok(Math.abs(r.coefficients["not_gamed_baseline.astype(float)"].value - 0.6) < 1e-3);
  assert.ok(Math.abs(r.winRate.mean - sigmoid(0.6)) < 1e-3);
  // One prediction for every instruction: AlpacaEval's standard error is 0.
  assert.ok(r.winRate.seAlpacaEval < 1e-9);
});

Deno.test("length-controlled GLM: swapping model and baseline gives 1 - LC", () => {
  const obs = synthetic(300, { length: -0.7, difficulty: 0.3, model: 0.4 }, 4, true);
  const swapped = obs.map((o) => ({
    ...o,
    preference: 1 - o.preference,
    modelChars: o.baselineChars,
    baselineChars: o.modelChars,
  }));
  const a = lengthControlledWinRate(obs), b = lengthControlledWinRate(swapped);
  assert.ok(Math.abs(a.winRate.mean + b.winRate.mean - 1) < 1e-9);
  for (const s of Object.keys(a.perSubset)) {
    assert.ok(Math.abs(a.perSubset[s].mean + b.perSubset[s].mean - 1) < 1e-9);
  }
  assert.equal(a.C, b.C);
  assert.ok(Math.abs(a.winRate.se! - b.winRate.se!) < 1e-9);
});

Deno.test("length-controlled GLM: edge cases", () => {
  // Preferences that ignore length: LC equals the raw win rate.
  const flat: LcObservation[] = Array.from({ length: 40 }, (_, i) => ({
    preference: 0.7,
    modelChars: 100 + 7 * i,
    baselineChars: 300 - 5 * i,
    subset: "s",
  }));
  const r = lengthControlledWinRate(flat);
  assert.ok(Math.abs(r.winRate.mean - 0.7) < 1e-3, `${r.winRate.mean}`);
  // Fewer instructions than folds: no cross-validation, AlpacaEval's C = 100.
  const few = lengthControlledWinRate(flat.slice(0, 3));
  assert.equal(few.cv, null);
  assert.equal(few.C, 100);
  // No spread in lengths: the length term is 0, the model term carries everything.
  const same = lengthControlledWinRate(
    flat.map((o, i) => ({ ...o, modelChars: 10, baselineChars: 20, preference: i % 2 })),
  );
  assert.equal(same.deltaLenStd, 0);
  assert.equal(same.coefficients["np.tanh(std_delta_len)"].value, 0);
  assert.ok(Math.abs(same.winRate.mean - 0.5) < 1e-3);
  // Bad rows are errors naming the row.
  assert.throws(
    () => lengthControlledWinRate([{ ...flat[0] }, { ...flat[1], preference: NaN }]),
    /row 1 has preference NaN/,
  );
  assert.throws(() => lengthControlledWinRate([]), /no judged instructions/);
  // Lengths are Python's: code points.
  assert.equal(pythonLength("a\u{1F600}b"), 3);
});

Deno.test("fitL1Logistic: a strong penalty zeroes the coefficients; the fit is deterministic", () => {
  const obs = synthetic(200, { length: 1, difficulty: 1, model: 1 }, 5);
  const { X } = lcDesign(obs);
  const y = obs.map((o) => o.preference);
  assert.deepEqual(fitL1Logistic(X, y, 1e-4), [0, 0, 0]);
  assert.deepEqual(fitL1Logistic(X, y, 3), fitL1Logistic(X, y, 3));
});

Deno.test("lcDesign: AlpacaEval's features, computed by hand", () => {
  // delta_len = len(baseline) - len(model) = [10, -20, 40]; mean 10; sample std
  // sqrt((0 + 900 + 900) / 2) = 30 (pandas' std, ddof 1).
  const rows: LcObservation[] = [
    { preference: 0.2, baselineChars: 110, modelChars: 100, subset: "a", difficulty: 0.5 },
    { preference: 0.6, baselineChars: 80, modelChars: 100, subset: "a", difficulty: -1 },
    { preference: 0.9, baselineChars: 140, modelChars: 100, subset: "b", difficulty: 2 },
  ];
  const { X, deltaLenStd } = lcDesign(rows);
  assert.equal(deltaLenStd, 30);
  assert.deepEqual(X, [
    [Math.tanh(10 / 30), 0.5, 1],
    [Math.tanh(-20 / 30), -1, 1],
    [Math.tanh(40 / 30), 2, 1],
  ]);
  assert.throws(
    () => lcDesign([rows[0], { ...rows[1], difficulty: undefined }]),
    /row 1 differs from row 0 in having a difficulty/,
  );
});
