// The tiny table's statistics: the paired interval over seeds and tasks (by construction and by
// its coverage on simulated crossed effects), the rows, and the refusal of mismatched bases.
import assert from "node:assert/strict";
import {
  formatTinyTable,
  pairedDifference,
  type TableMember,
  tinyTable,
} from "../lib/tinyworld/table.ts";
import { Rng } from "../lib/tinyworld/prng.ts";

const near = (a: number, b: number, tol = 1e-12) =>
  assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);
const variance = (xs: number[]) => {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  return xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1);
};

Deno.test("paired difference: pure seed, pure task and one-seed cases by hand", () => {
  const a = [0.1, -0.3, 0.4];
  const seedOnly = a.map((x) => Array.from({ length: 5 }, () => x));
  const r1 = pairedDifference(seedOnly);
  near(r1.mean, (0.1 - 0.3 + 0.4) / 3);
  near(r1.se, Math.sqrt(variance(a) / 3));
  const b = [1, 0, 0, -1, 1, 0];
  const taskOnly = [b, b, b];
  const r2 = pairedDifference(taskOnly);
  near(r2.se, Math.sqrt(variance(b) / 6));
  const r3 = pairedDifference([b]);
  near(r3.se, Math.sqrt(variance(b) / 6));
  assert.throws(() => pairedDifference([[1]]), /T >= 2/);
  assert.throws(() => pairedDifference([[1, 0], [1]]), /same T/);
});

Deno.test("paired difference: the 95% interval covers the true mean about 95% of the time", () => {
  // d[s][t] = mu + seed effect + task effect + noise, crossed; 3 seeds x 60 tasks.
  const rng = new Rng(5, 0);
  const normal = () => {
    const u = Math.max(rng.next(), 1e-12), v = rng.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
  const mu = 0.1, S = 3, T = 60, trials = 2000;
  let covered = 0;
  for (let k = 0; k < trials; k++) {
    const seedFx = Array.from({ length: S }, () => 0.05 * normal());
    const taskFx = Array.from({ length: T }, () => 0.3 * normal());
    const d = seedFx.map((s) => taskFx.map((t) => mu + s + t + 0.4 * normal()));
    const r = pairedDifference(d);
    if (Math.abs(r.mean - mu) <= 1.96 * r.se) covered++;
  }
  const coverage = covered / trials;
  assert.ok(coverage > 0.9 && coverage < 0.98, `coverage ${coverage}`);
});

function member(arm: string, seed: number, policy: number[], base: number[]): TableMember {
  const acc = (xs: number[]) => ({ accuracy: xs.reduce((a, b) => a + b, 0) / xs.length });
  return {
    arm,
    seed,
    policy: { overall: acc(policy), perTask: policy, byLevel: { "1": acc(policy) } },
    base: { overall: acc(base), perTask: base, byLevel: { "1": acc(base) } },
    metrics: arm === "lsp"
      ? [
        { iter: 1, queries: { distinctShare: 1, wellFormedShare: 0.8, inRangeShare: 0.7 } },
        { iter: 5, queries: { distinctShare: 0.5, wellFormedShare: 0.2, inRangeShare: 0.1 } },
      ]
      : [],
    queries: arm === "lsp"
      ? [{ iter: 1, queries: ["reverse: ab", "oops"] }, { iter: 5, queries: ["oops", "oops"] }]
      : [],
  };
}

Deno.test("tiny table: rows per arm, paired against the base, challenger early vs late", () => {
  const base = [1, 0, 0, 1, 0, 0];
  const members = [
    member("grpo", 1, [1, 1, 0, 1, 0, 0], base),
    member("grpo", 0, [1, 1, 1, 1, 0, 0], base),
    member("lsp", 0, [0, 0, 0, 1, 0, 0], base),
    // LSP then GRPO started from an LSP model: its own reference is not the base.
    member("lsp-grpo", 0, [1, 1, 1, 1, 1, 0], [0, 0, 0, 1, 0, 0]),
  ];
  const rows = tinyTable(members, 5);
  assert.deepEqual(rows.map((r) => r.arm), ["base", "grpo", "lsp", "lsp-grpo"]);
  const [b, grpo, lsp, chain] = rows;
  near(b.accuracy, 2 / 6);
  assert.equal(b.ci95, null);
  assert.deepEqual(grpo.seeds, [0, 1]);
  near(grpo.accuracy, (4 / 6 + 3 / 6) / 2);
  near(grpo.difference!.mean, 3 / 12);
  assert.deepEqual([grpo.wins, grpo.ties, grpo.losses], [3, 9, 0]);
  near(grpo.winRate, (3 + 4.5) / 12);
  assert.ok(grpo.ci95![0] < grpo.difference!.mean && grpo.difference!.mean < grpo.ci95![1]);
  assert.deepEqual([lsp.wins, lsp.ties, lsp.losses], [0, 5, 1]);
  // Paired with the original base, not with its own reference.
  near(chain.difference!.mean, 3 / 6);
  assert.deepEqual(lsp.challenger!.early.levels, { "1": 0.5, malformed: 0.5 });
  assert.deepEqual(lsp.challenger!.late.levels, { malformed: 1 });
  near(lsp.challenger!.early.wellFormed!, 0.8);
  near(lsp.challenger!.late.wellFormed!, 0.2);
  const text = formatTinyTable(rows);
  for (const arm of ["base", "grpo", "lsp", "lsp-grpo"]) {
    assert.match(text, new RegExp(`^${arm} `, "m"));
  }
  assert.match(text, /well-formed 80\.0% -> 20\.0%/);
});

Deno.test("tiny table: members that evaluated different bases are refused", () => {
  const members = [
    member("grpo", 0, [1, 0, 1], [1, 0, 0]),
    member("lsp", 0, [1, 0, 1], [0, 0, 0]),
  ];
  assert.throws(() => tinyTable(members, 10), /lsp seed 0 evaluated another base/);
});
