import assert from "node:assert/strict";
import { DatasetError } from "../lib/data/instructions.ts";
import { evalSetHash, evalSetOf, loadEvalSet } from "../lib/eval/eval_set.ts";

const ROWS = [
  { instruction: "a", dataset: "x" },
  { instruction: "b", dataset: "y" },
  { instruction: "c", dataset: "x" },
];

async function withEvalFile(f: (path: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "eval_set_" });
  try {
    const path = `${dir}/eval.json`;
    await Deno.writeTextFile(path, JSON.stringify(ROWS));
    await f(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("loadEvalSet: subsets, limit, and a hash of what the models see", async () => {
  await withEvalFile(async (path) => {
    const all = await loadEvalSet(path);
    assert.equal(all.source, path);
    assert.deepEqual(all.items.map((it) => it.prompt), ["a", "b", "c"]);
    const x = await loadEvalSet(path, { subsets: ["x"] });
    assert.deepEqual(x.items.map((it) => it.prompt), ["a", "c"]);
    const two = await loadEvalSet(path, { limit: 2 });
    assert.deepEqual(two.items.map((it) => it.prompt), ["a", "b"]);
    // The hash follows prompts, subsets and order; the same items hash the same.
    assert.equal(all.hash, evalSetHash(all.items));
    assert.match(all.hash, /^[0-9a-f]{64}$/);
    assert.notEqual(two.hash, all.hash);
    assert.notEqual(evalSetHash([...all.items].reverse()), all.hash);
    const moved = all.items.map((it, i) => i === 1 ? { ...it, dataset: "x" } : it);
    assert.notEqual(evalSetHash(moved), all.hash);
    assert.equal(evalSetOf(all.items, "mem").hash, all.hash);
  });
});

Deno.test("loadEvalSet: every bad option names the file and the field", async () => {
  await withEvalFile(async (path) => {
    const cases: [Parameters<typeof loadEvalSet>[1], RegExp][] = [
      [{ limit: 0 }, /limit must be an integer >= 1, got 0/],
      [{ limit: 1.5 }, /limit must be an integer >= 1, got 1.5/],
      [{ limit: 4 }, /limit 4 is more than the 3 instructions available/],
      [{ subsets: [] }, /subsets must be a non-empty list/],
      [
        { subsets: ["x", "z"] },
        /subset "z" does not occur in the "dataset" field \(present: x, y\)/,
      ],
      [{ subsets: ["y"], limit: 2 }, /limit 2 is more than the 1 instructions/],
    ];
    for (const [opts, re] of cases) {
      await assert.rejects(loadEvalSet(path, opts), (e: Error) => {
        assert.ok(e instanceof DatasetError, String(e));
        assert.match(e.message, re);
        assert.ok(e.message.startsWith(path), e.message);
        return true;
      });
    }
  });
  assert.throws(() => evalSetOf([], "mem"), /mem: the eval set is empty/);
  // File-level errors come from the shared loader (tested in data_instructions_test.ts).
  await assert.rejects(loadEvalSet("/nonexistent/eval.json"), /no such file/);
});
