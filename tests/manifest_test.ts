import assert from "node:assert/strict";
import { join } from "node:path";
import { z } from "zod";
import { canonicalJson } from "../lib/manifest/canonical.ts";
import { ManifestError } from "../lib/manifest/errors.ts";
import { parseJsonc } from "../lib/manifest/jsonc.ts";
import { type KindSchema, loadManifest } from "../lib/manifest/load.ts";
import { deepMerge } from "../lib/manifest/merge.ts";
import { parseSet, parseSetValue } from "../lib/manifest/overrides.ts";
import { levenshtein, nearestKey } from "../lib/manifest/suggest.ts";
import { KINDS } from "../lib/cli/kinds.ts";
import { EXPERIMENTS_DIR } from "../lib/runner/project.ts";

/** A kind shaped like a training run: nested objects with defaults, arrays, a record. */
const TRAIN: KindSchema = {
  kind: "train",
  schema: z.strictObject({
    steps: z.number().int().min(1).default(10),
    model: z.string().default("tiny"),
    optimizer: z.strictObject({
      learningRate: z.number().positive().default(1e-3),
      betas: z.tuple([z.number(), z.number()]).default([0.9, 0.999]),
      weightDecay: z.number().default(0),
    }).prefault({}),
    tags: z.array(z.string()).default([]),
    env: z.record(z.string(), z.string()).default({}),
    note: z.string().nullable().default(null),
  }),
};
const KINDS_FOR_TEST = [TRAIN, { kind: "probe", schema: z.strictObject({}) }];

function dirWith(files: Record<string, string>): string {
  const dir = Deno.makeTempDirSync({ prefix: "manifest_test_" });
  for (const [name, text] of Object.entries(files)) {
    Deno.mkdirSync(join(dir, name, ".."), { recursive: true });
    Deno.writeTextFileSync(join(dir, name), text);
  }
  return dir;
}

function load(dir: string, ref: string, sets: string[] = []) {
  return loadManifest(ref, { experimentsDir: dir, kinds: KINDS_FOR_TEST, sets });
}

/** Asserts that loading throws a ManifestError whose message contains every fragment. */
function assertFails(fn: () => unknown, ...fragments: string[]): string {
  let msg = "";
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ManifestError, `expected a ManifestError, got ${e}`);
    msg = e.message;
    for (const f of fragments) assert.ok(msg.includes(f), `"${msg}" lacks "${f}"`);
    return true;
  });
  return msg;
}

const BASE = `// a base experiment
{
  "kind": "train", /* inline comment */
  "description": "base run",
  "seed": 7,
  "optimizer": { "learningRate": 0.01, "betas": [0.8, 0.9], }, // trailing comma
  "tags": ["a", "b"],
  "env": { "X": "1" },
}`;

Deno.test("defaults are filled and the resolved manifest holds every field", () => {
  const dir = dirWith({ "min.jsonc": `{"kind": "train", "description": "minimal"}` });
  const m = load(dir, "min");
  assert.equal(m.name, "min");
  assert.equal(m.seed, 0);
  assert.deepEqual(m.resolved, {
    kind: "train",
    description: "minimal",
    seed: 0,
    steps: 10,
    model: "tiny",
    optimizer: { learningRate: 1e-3, betas: [0.9, 0.999], weightDecay: 0 },
    tags: [],
    env: {},
    note: null,
  });
});

Deno.test("extends deep-merges objects and replaces arrays and scalars", () => {
  const dir = dirWith({
    "base.jsonc": BASE,
    "child.jsonc": `{ "extends": "base", "description": "child run",
      "optimizer": { "learningRate": 0.02 }, "tags": ["c"], "env": { "Y": "2" } }`,
    "sub/grandchild.jsonc": `{ "extends": "../child.jsonc", "steps": 3 }`,
  });
  const m = load(dir, join(dir, "sub/grandchild.jsonc"));
  assert.equal(m.name, "grandchild");
  assert.deepEqual(m.chain, [
    join(dir, "sub/grandchild.jsonc"),
    join(dir, "child.jsonc"),
    join(dir, "base.jsonc"),
  ]);
  assert.equal(m.description, "child run");
  assert.equal(m.seed, 7);
  assert.equal(m.params.steps, 3);
  assert.deepEqual(m.params.optimizer, { learningRate: 0.02, betas: [0.8, 0.9], weightDecay: 0 });
  assert.deepEqual(m.params.tags, ["c"]);
  assert.deepEqual(m.params.env, { X: "1", Y: "2" });
  assert.ok(!("extends" in m.resolved));
});

Deno.test("--set parses values by type and overrides nested keys", () => {
  const dir = dirWith({ "base.jsonc": BASE });
  const m = load(dir, "base", [
    "steps=42",
    "optimizer.learningRate=5e-4",
    "optimizer.betas=[0.5, 0.6]",
    "tags=[]",
    "model=llama 3",
    "env.PATH=/usr/bin:/bin",
    "note=null",
    'description="quoted=value"',
  ]);
  assert.equal(m.params.steps, 42);
  assert.deepEqual(m.params.optimizer, { learningRate: 5e-4, betas: [0.5, 0.6], weightDecay: 0 });
  assert.deepEqual(m.params.tags, []);
  assert.equal(m.params.model, "llama 3");
  assert.deepEqual(m.params.env, { X: "1", PATH: "/usr/bin:/bin" });
  assert.equal(m.params.note, null);
  assert.equal(m.description, "quoted=value");
  assert.deepEqual(m.sets.map((s) => s.text)[0], "steps=42");
  // a key absent from the file but present in the schema is created
  const d2 = dirWith({ "min.jsonc": `{"kind": "train", "description": "m"}` });
  assert.equal(
    load(d2, "min", ["optimizer.weightDecay=0.1"]).params.optimizer instanceof Object,
    true,
  );
  assert.equal(
    (load(d2, "min", ["optimizer.weightDecay=0.1"]).params.optimizer as { weightDecay: number })
      .weightDecay,
    0.1,
  );
});

Deno.test("parseSetValue types numbers, booleans, null, JSON and plain strings", () => {
  assert.equal(parseSetValue("3"), 3);
  assert.equal(parseSetValue("-2.5e3"), -2500);
  assert.equal(parseSetValue("true"), true);
  assert.equal(parseSetValue("false"), false);
  assert.equal(parseSetValue("null"), null);
  assert.deepEqual(parseSetValue('{"a":[1]}'), { a: [1] });
  assert.equal(parseSetValue('"007"'), "007");
  assert.equal(parseSetValue("007"), "007"); // not a JSON number: kept as text
  assert.equal(parseSetValue("hello world"), "hello world");
  assert.equal(parseSetValue(""), "");
  assert.deepEqual(parseSet("a.b.c=x=y"), {
    text: "a.b.c=x=y",
    path: ["a", "b", "c"],
    value: "x=y",
  });
});

Deno.test("bad JSONC names the file, line and column", () => {
  const dir = dirWith({
    "bad.jsonc": `{\n  "kind": "train",\n  "description": "x"\n  "seed": 1\n}`,
  });
  assertFails(() => load(dir, "bad"), "bad.jsonc:4:", "invalid JSONC");
  const d2 = dirWith({ "c.jsonc": `{ "kind": "train" /* never closed` });
  assertFails(() => load(d2, "c"), "c.jsonc:1:", "unterminated /* comment");
  const d3 = dirWith({ "e.jsonc": `  // only a comment\n` });
  assertFails(() => load(d3, "e"), "e.jsonc", "empty");
  const d4 = dirWith({ "arr.jsonc": `[1, 2]` });
  assertFails(() => load(d4, "arr"), "arr.jsonc", "must be a JSON object");
});

Deno.test("JSONC keeps comment-like text inside strings", () => {
  const v = parseJsonc(`{"url": "http://x/*y*/", "s": "a,]", /* c */ "t": [1,],}`, "f");
  assert.deepEqual(v, { url: "http://x/*y*/", s: "a,]", t: [1] });
});

Deno.test("a missing manifest or extends target is named", () => {
  const dir = dirWith({ "child.jsonc": `{"extends": "nowhere", "kind": "train"}` });
  assertFails(() => load(dir, "absent"), "absent.jsonc", "no such file", "deno task list");
  assertFails(() => load(dir, "child"), "nowhere.jsonc", 'named by "extends" in', "child.jsonc");
  const d2 = dirWith({ "x.jsonc": `{"extends": 3}` });
  assertFails(() => load(d2, "x"), "x.jsonc", '"extends" must be');
});

Deno.test("an extends cycle is reported with its chain", () => {
  const dir = dirWith({
    "a.jsonc": `{"extends": "b", "kind": "train", "description": "a"}`,
    "b.jsonc": `{"extends": "c"}`,
    "c.jsonc": `{"extends": "a"}`,
    "self.jsonc": `{"extends": "self"}`,
  });
  const msg = assertFails(() => load(dir, "a"), "cycle");
  assert.match(msg, /a\.jsonc -> .*b\.jsonc -> .*c\.jsonc -> .*a\.jsonc/);
  assertFails(() => load(dir, "self"), "cycle", "self.jsonc -> ");
});

Deno.test("unknown keys are rejected with their full path and the nearest valid key", () => {
  const dir = dirWith({
    "top.jsonc": `{"kind": "train", "description": "d", "stpes": 3}`,
    "nested.jsonc": `{"kind": "train", "description": "d", "optimizer": {"learningrate": 1}}`,
    "base.jsonc": `{"kind": "train", "description": "d", "sede": 1}`,
  });
  assertFails(() => load(dir, "top"), "top.jsonc", 'unknown key "stpes"', 'did you mean "steps"');
  assertFails(
    () => load(dir, "nested"),
    'unknown key "optimizer.learningrate"',
    'did you mean "optimizer.learningRate"',
  );
  assertFails(() => load(dir, "base"), 'unknown key "sede"', 'did you mean "seed"');
});

Deno.test("wrong types, missing fields and unknown kinds are named", () => {
  const dir = dirWith({
    "type.jsonc": `{"kind": "train", "description": "d", "steps": "many"}`,
    "deep.jsonc": `{"kind": "train", "description": "d", "optimizer": {"betas": [1, "x"]}}`,
    "nodesc.jsonc": `{"kind": "train"}`,
    "nokind.jsonc": `{"description": "d"}`,
    "kind.jsonc": `{"kind": "trian", "description": "d"}`,
    "lines.jsonc": `{"kind": "train", "description": "two\\nlines"}`,
    "seed.jsonc": `{"kind": "train", "description": "d", "seed": -1}`,
  });
  assertFails(() => load(dir, "type"), "type.jsonc", '"steps": expected number, got "many"');
  assertFails(() => load(dir, "deep"), '"optimizer.betas[1]": expected number, got "x"');
  assertFails(() => load(dir, "nodesc"), '"description" is required');
  assertFails(() => load(dir, "nokind"), '"kind" is missing', "train, probe");
  assertFails(() => load(dir, "kind"), 'unknown kind "trian"', 'did you mean "train"');
  assertFails(() => load(dir, "lines"), '"description": must be one line');
  assertFails(() => load(dir, "seed"), '"seed"');
});

Deno.test("bad --set arguments are named", () => {
  const dir = dirWith({ "base.jsonc": BASE });
  assertFails(() => load(dir, "base", ["steps"]), "--set", 'no "="');
  assertFails(() => load(dir, "base", ["=3"]), "--set", "empty key");
  assertFails(() => load(dir, "base", ["optimizer..lr=3"]), "--set", "empty key");
  assertFails(
    () => load(dir, "base", ["optimizer.lr=3"]),
    'unknown key "optimizer.lr"',
    'did you mean "optimizer.betas"',
  );
  assertFails(() => load(dir, "base", ["setps=3"]), 'unknown key "setps"', 'did you mean "steps"');
  assertFails(() => load(dir, "base", ["steps.x=3"]), '"steps" is a number, it has no key "x"');
  assertFails(() => load(dir, "base", ["tags=[1,"]), "--set", "not valid JSON");
  assertFails(
    () => load(dir, "base", ["steps=abc"]),
    "--set steps=abc",
    '"steps": expected number',
  );
  assertFails(() => load(dir, "base", ["optimizer.betas.5=1"]), "--set", "not an index");
});

Deno.test("deepMerge, levenshtein and canonical JSON", () => {
  assert.deepEqual(deepMerge({ a: { b: 1, c: [1, 2] }, d: 1 }, { a: { c: [3] }, e: 2 }), {
    a: { b: 1, c: [3] },
    d: 1,
    e: 2,
  });
  assert.equal(levenshtein("kitten", "sitting"), 3);
  assert.equal(nearestKey("lerningRate", ["steps", "learningRate", "seed"]), "learningRate");
  assert.equal(nearestKey("x", []), null);
  assert.equal(nearestKey("sft", ["gpu-probe"], 2), null);
  assert.equal(
    canonicalJson({ b: 1, a: { d: [{ z: 1, y: 2 }], c: null } }),
    '{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}',
  );
  assert.throws(() => canonicalJson({ a: NaN }), /a is NaN/);
});

Deno.test("every manifest in experiments/ resolves", async () => {
  const problems: string[] = [];
  let n = 0;
  for await (const e of Deno.readDir(EXPERIMENTS_DIR)) {
    if (!e.isFile || !e.name.endsWith(".jsonc")) continue;
    n++;
    try {
      loadManifest(e.name.slice(0, -6), { experimentsDir: EXPERIMENTS_DIR, kinds: KINDS });
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  assert.ok(n >= 1);
  assert.deepEqual(problems, [], "every manifest must name a registered kind and valid keys");
});
