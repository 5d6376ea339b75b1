import assert from "node:assert/strict";
import { join } from "node:path";
import { z } from "zod";
import { verifyBundle } from "../lib/bundle/verify.ts";
import { loadManifest } from "../lib/manifest/load.ts";
import { defineKind, type ExperimentKind } from "../lib/experiment/kind.ts";
import { runExperiment, RunSetupError } from "../lib/runner/run.ts";
import { UserError } from "../lib/util/user_error.ts";
import { createGpu } from "../gpu/device.ts";

const tmp = () => Deno.makeTempDirSync({ prefix: "runner_test_" });

/** Writes metrics for `steps` steps, stopping early when the signal is aborted. */
const counter = defineKind({
  kind: "counter",
  description: "counts",
  schema: z.strictObject({
    steps: z.number().int().default(3),
    input: z.string().nullable().default(null),
    failAt: z.number().int().default(-1),
    writeReserved: z.boolean().default(false),
  }),
  inputs: (p) => (p.input ? [p.input] : []),
  async run(ctx, p) {
    for (let i = 0; i < p.steps; i++) {
      ctx.throwIfAborted();
      if (i === p.failAt) throw new Error(`step ${i} went wrong`);
      await ctx.appendJsonl("metrics.jsonl", { step: i, value: ctx.seed + i }, {
        deterministic: true,
      });
      await ctx.appendJsonl("timings.jsonl", { step: i, ms: performance.now() }, {
        deterministic: false,
      });
      ctx.progress("counting", i + 1, p.steps);
      ctx.log(`step ${i}`);
      if (i === 0) globalThis.dispatchEvent(new Event("counter-step-0"));
      await new Promise((r) => setTimeout(r, 1));
    }
    if (p.writeReserved) await ctx.writeFile("manifest.json", "{}", { deterministic: true });
    await ctx.writeFile("eval.json", JSON.stringify({ total: p.steps }), { deterministic: true });
    ctx.recordProvenance("note", "hello");
  },
});
/** Set by a test to make the resumable kind crash at that step (the manifest stays the same). */
let crashAtStep = -1;

/** Resumable: continues metrics.jsonl where it stopped; writes first.bin only on a fresh start. */
const resumable = defineKind({
  kind: "resumable",
  description: "resumes",
  resumable: true,
  schema: z.strictObject({ steps: z.number().int().default(4) }),
  async run(ctx, p) {
    let start = 0;
    if (ctx.resume) {
      start =
        new TextDecoder().decode(await ctx.readFile("metrics.jsonl")).trim().split("\n").length;
    } else await ctx.writeFile("first.bin", new Uint8Array([1, 2, 3]), { deterministic: true });
    for (let i = start; i < p.steps; i++) {
      if (i === crashAtStep) throw new Error("simulated crash");
      await ctx.appendJsonl("metrics.jsonl", { step: i }, { deterministic: true });
    }
  },
});
/** Fails in one of the ways that escape a kind's own control flow (see the "every failure" test). */
const faulty = defineKind({
  kind: "faulty",
  description: "fails out of band",
  schema: z.strictObject({
    fault: z.enum(["rejection", "timer", "validation", "oom"]).default("rejection"),
  }),
  async run(ctx, p) {
    await ctx.appendJsonl("metrics.jsonl", { step: 0 }, { deterministic: true });
    if (p.fault === "rejection") {
      // A promise nobody awaits (as a second failure inside Promise.all is).
      Promise.reject(new Error("a lost promise"));
      await new Promise((r) => setTimeout(r, 20));
    } else if (p.fault === "timer") {
      setTimeout(() => {
        throw new Error("thrown in a timer");
      }, 0);
      await new Promise((r) => setTimeout(r, 20));
    } else {
      // A device of its own, so the process-wide one stays healthy for other tests.
      const gpu = await createGpu();
      if (p.fault === "validation") {
        gpu.device.createBuffer({
          size: 4,
          usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.STORAGE,
        });
      } else {
        gpu.device.dispatchEvent(
          new GPUUncapturedErrorEvent("uncapturederror", {
            error: new GPUOutOfMemoryError("out of memory (injected)"),
          }),
        );
      }
      await gpu.device.queue.onSubmittedWorkDone();
      // The kind ends normally: only the runner's check can see that the GPU work failed.
    }
  },
});
const KINDS: ExperimentKind[] = [counter, resumable, faulty];

function setup(sets: string[] = [], kind = "counter") {
  const root = tmp();
  Deno.writeTextFileSync(join(root, "main.ts"), "// code");
  Deno.mkdirSync(join(root, "experiments"));
  Deno.writeTextFileSync(
    join(root, "experiments/count.jsonc"),
    `{"kind": "${kind}", "description": "count a bit", "seed": 5}`,
  );
  const manifest = loadManifest("count", {
    experimentsDir: join(root, "experiments"),
    kinds: KINDS,
    sets,
  });
  return { root, manifest };
}

function run(
  s: ReturnType<typeof setup>,
  extra: Partial<Parameters<typeof runExperiment>[0]> = {},
) {
  return runExperiment({
    manifest: s.manifest,
    kinds: KINDS,
    root: s.root,
    resultsDir: join(s.root, "results"),
    signal: new AbortController().signal,
    ...extra,
  });
}

Deno.test("a completed run leaves a verified bundle under results/<experiment>/<run-id>", async () => {
  const s = setup();
  const out = await run(s);
  assert.equal(out.status, "completed");
  assert.match(out.runId, /^[0-9a-f]{16}$/);
  assert.equal(out.bundleDir, join(s.root, "results", "count", out.runId));
  const files = out.index!.files.map((f) => `${f.path}:${f.deterministic}`);
  assert.deepEqual(files, [
    "charts/value.png:false", // drawn by the runner at the end of every run
    "eval.json:true",
    "log.txt:false",
    "manifest.json:true",
    "metrics.jsonl:true",
    "provenance.json:false",
    "status.json:false",
    "timings.jsonl:false",
  ]);
  assert.ok((await verifyBundle(out.bundleDir)).ok);
  const manifest = JSON.parse(await Deno.readTextFile(join(out.bundleDir, "manifest.json")));
  assert.deepEqual(Object.keys(manifest), [
    "description",
    "failAt",
    "input",
    "kind",
    "seed",
    "steps",
    "writeReserved",
  ]);
  const prov = JSON.parse(await Deno.readTextFile(join(out.bundleDir, "provenance.json")));
  assert.equal(prov.runId, out.runId);
  assert.equal(prov.deno.deno, Deno.version.deno);
  assert.ok(prov.cpu.count >= 1);
  assert.ok(prov.startedAt && prov.endedAt);
  assert.equal(prov.extra.note, "hello");
  assert.ok(prov.git.error, "the temp root is not a git checkout, and provenance says so");
  const log = await Deno.readTextFile(join(out.bundleDir, "log.txt"));
  assert.match(log, /step 2\n/);
});

Deno.test("reruns reproduce every deterministic file byte for byte", async () => {
  const s = setup();
  const a = await run(s, { outDir: join(s.root, "a") });
  const b = await run(s, { outDir: join(s.root, "b") });
  assert.equal(a.runId, b.runId);
  for (const f of a.index!.files) {
    const g = b.index!.files.find((x) => x.path === f.path)!;
    if (f.deterministic) assert.equal(g.sha256, f.sha256, f.path);
  }
  const differs = a.index!.files.filter((f) =>
    !f.deterministic && b.index!.files.find((x) => x.path === f.path)!.sha256 !== f.sha256
  );
  assert.ok(differs.some((f) => f.path === "provenance.json"), "timestamps live in provenance");
});

Deno.test("an existing completed run is refused unless --resume or --force", async () => {
  const s = setup();
  const first = await run(s);
  await assert.rejects(() => run(s), (e: unknown) => {
    assert.ok(e instanceof RunSetupError);
    assert.match(e.message, /already holds a completed run.*--force.*--out/s);
    return true;
  });
  const again = await run(s, { resume: true });
  assert.ok(again.alreadyComplete);
  assert.equal(again.bundleDir, first.bundleDir);
  const forced = await run(s, { force: true });
  assert.equal(forced.status, "completed");
  assert.ok((await verifyBundle(forced.bundleDir)).ok);
  // a directory that is not a bundle is never removed
  const other = join(s.root, "precious");
  Deno.mkdirSync(other);
  Deno.writeTextFileSync(join(other, "data.txt"), "keep me");
  await assert.rejects(() => run(s, { outDir: other, force: true }), /is not a bundle/);
  assert.equal(Deno.readTextFileSync(join(other, "data.txt")), "keep me");
});

Deno.test("--force removes only the earlier run's files and refuses, naming them, beside others", async () => {
  const s = setup();
  const first = await run(s);
  const dir = first.bundleDir;
  // A copied bundle with the user's work beside it: --force must not touch any of it.
  Deno.writeTextFileSync(join(dir, "thesis.tex"), "\\section{Results}");
  Deno.mkdirSync(join(dir, "mydir"));
  Deno.writeTextFileSync(join(dir, "mydir", "notes.txt"), "mine");
  await assert.rejects(() => run(s, { force: true }), (e: unknown) => {
    assert.ok(e instanceof UserError, String(e));
    assert.match(
      (e as Error).message,
      /holds files its run did not write \(mydir\/notes\.txt, thesis\.tex\); --force removes only/,
    );
    return true;
  });
  assert.equal(Deno.readTextFileSync(join(dir, "thesis.tex")), "\\section{Results}");
  assert.equal(Deno.readTextFileSync(join(dir, "mydir", "notes.txt")), "mine");
  assert.ok((await verifyBundle(dir)).problems.length === 2, "the old bundle is untouched");
  // A link is named too (and never followed).
  Deno.removeSync(join(dir, "thesis.tex"));
  Deno.removeSync(join(dir, "mydir"), { recursive: true });
  Deno.symlinkSync("/etc", join(dir, "etc-link"));
  await assert.rejects(() => run(s, { force: true }), /etc-link \(a symbolic link\)/);
  Deno.removeSync(join(dir, "etc-link"));
  // With only the run's own files (and a temporary file of an interrupted write) it starts over.
  Deno.writeTextFileSync(join(dir, ".eval.json.999.0.tmp"), "half");
  const forced = await run(s, { force: true });
  assert.equal(forced.status, "completed");
  assert.ok((await verifyBundle(forced.bundleDir)).ok);
});

Deno.test("a thrown error marks the run failed with its message", async () => {
  const s = setup(["failAt=1"]);
  const out = await run(s);
  assert.equal(out.status, "failed");
  assert.equal(out.error, "step 1 went wrong");
  const st = JSON.parse(await Deno.readTextFile(join(out.bundleDir, "status.json")));
  assert.deepEqual([st.status, st.error], ["failed", "step 1 went wrong"]);
  assert.ok((await verifyBundle(out.bundleDir)).ok);
  await assert.rejects(() => run(s), /unfinished run \(status: failed\).*--force/);
  await assert.rejects(() => run(s, { resume: true }), /cannot resume/);
});

Deno.test("every failure is recorded: a lost rejection, a timer's throw, a WebGPU validation error, out-of-memory", async () => {
  const cases: [string, RegExp][] = [
    ["rejection", /^a lost promise \(an unhandled rejection\)$/],
    ["timer", /^thrown in a timer \(uncaught\)$/],
    ["validation", /^WebGPU error: .*MAP.*usage/],
    ["oom", /^WebGPU error: out of memory \(injected\)$/],
  ];
  for (const [fault, re] of cases) {
    const s = setup([`fault="${fault}"`], "faulty");
    const out = await run(s);
    assert.equal(out.status, "failed", fault);
    assert.match(out.error ?? "", re, fault);
    const st = JSON.parse(await Deno.readTextFile(join(out.bundleDir, "status.json")));
    assert.equal(st.status, "failed", `${fault}: status.json says ${st.status}`);
    assert.ok((await verifyBundle(out.bundleDir)).ok, fault);
  }
  await new Promise((r) => setTimeout(r, 50)); // let the kinds' own timers end
});

Deno.test("an aborted signal lets the run stop between steps and marks it interrupted", async () => {
  const s = setup(["steps=1000"]);
  const ctl = new AbortController();
  const onStep = () => ctl.abort();
  globalThis.addEventListener("counter-step-0", onStep, { once: true });
  const out = await run(s, { signal: ctl.signal });
  globalThis.removeEventListener("counter-step-0", onStep);
  assert.equal(out.status, "interrupted");
  const lines = (await Deno.readTextFile(join(out.bundleDir, "metrics.jsonl"))).trim().split("\n");
  assert.ok(lines.length >= 1 && lines.length < 1000);
  assert.ok((await verifyBundle(out.bundleDir)).ok);
});

Deno.test("kinds may not write the runner's files", async () => {
  const out = await run(setup(["writeReserved=true"]));
  assert.equal(out.status, "failed");
  assert.match(out.error!, /manifest\.json is written by the runner/);
});

Deno.test("input files enter the run id; a missing input is a clear error", async () => {
  const s0 = setup();
  const input = join(s0.root, "weights.bin");
  Deno.writeTextFileSync(input, "w1");
  const s = setup([`input=${input}`]);
  const a = await run(s, { outDir: join(s.root, "a") });
  Deno.writeTextFileSync(input, "w2");
  const b = await run(s, { outDir: join(s.root, "b") });
  assert.notEqual(a.runId, b.runId);
  const prov = JSON.parse(await Deno.readTextFile(join(b.bundleDir, "provenance.json")));
  assert.match(prov.inputs[input], /^[0-9a-f]{64}$/);
  const missing = setup([`input=${join(s0.root, "absent.bin")}`]);
  await assert.rejects(() => run(missing), /input ".*absent\.bin" cannot be read/);
});

Deno.test("--resume continues a run killed before sealing, keeping the files it wrote", async () => {
  const s = setup([], "resumable");
  const dir = join(s.root, "b");
  crashAtStep = 2;
  const out = await run(s, { outDir: dir });
  crashAtStep = -1;
  assert.equal(out.status, "failed");
  // Make it look like a hard kill: no index, status still "running".
  await Deno.remove(join(dir, "bundle.json"));
  const st = JSON.parse(await Deno.readTextFile(join(dir, "status.json")));
  assert.equal(st.files["first.bin"], true, "status.json keeps the registered files");
  assert.equal(st.files["metrics.jsonl"], true);
  await Deno.writeTextFile(join(dir, "status.json"), JSON.stringify({ ...st, status: "running" }));
  await assert.rejects(
    () => run(s, { outDir: dir }),
    /unfinished run \(status: running\).*--resume/s,
  );
  const resumed = await run(s, { outDir: dir, resume: true });
  assert.equal(resumed.status, "completed", resumed.error);
  assert.ok(resumed.index!.files.some((f) => f.path === "first.bin" && f.deterministic));
  const steps = (await Deno.readTextFile(join(dir, "metrics.jsonl"))).trim().split("\n")
    .map((l) => JSON.parse(l).step);
  assert.deepEqual(steps, [0, 1, 2, 3]);
  const prov = JSON.parse(await Deno.readTextFile(join(dir, "provenance.json")));
  assert.equal(prov.resumed, true);
  assert.ok((await verifyBundle(dir)).ok);
});

Deno.test("--resume drops listed files that were removed since, instead of failing incomplete", async () => {
  const s = setup([], "resumable");
  const dir = join(s.root, "gone");
  crashAtStep = 2;
  const out = await run(s, { outDir: dir });
  crashAtStep = -1;
  assert.equal(out.status, "failed");
  assert.ok(out.index!.files.some((f) => f.path === "first.bin"));
  // Both resume sources list first.bin: the sealed index here, status.json after a hard kill.
  await Deno.remove(join(dir, "first.bin"));
  const resumed = await run(s, { outDir: dir, resume: true });
  assert.equal(resumed.status, "completed", resumed.error);
  assert.ok(!resumed.index!.files.some((f) => f.path === "first.bin"));
  const log = await Deno.readTextFile(join(dir, "log.txt"));
  assert.match(log, /first\.bin was listed by the unfinished run but is gone/);
  assert.ok((await verifyBundle(dir)).ok);

  // The same after a hard kill: no bundle.json, status.json still lists the removed file.
  const dir2 = join(s.root, "gone2");
  crashAtStep = 2;
  await run(s, { outDir: dir2 });
  crashAtStep = -1;
  await Deno.remove(join(dir2, "bundle.json"));
  await Deno.remove(join(dir2, "first.bin"));
  const st = JSON.parse(await Deno.readTextFile(join(dir2, "status.json")));
  assert.equal(st.files["first.bin"], true);
  await Deno.writeTextFile(join(dir2, "status.json"), JSON.stringify({ ...st, status: "running" }));
  const resumed2 = await run(s, { outDir: dir2, resume: true });
  assert.equal(resumed2.status, "completed", resumed2.error);
  assert.ok((await verifyBundle(dir2)).ok);
});
