/**
 * Bundles inside a bundle (a sweep's members): listed by their bundle.json, verified as bundles
 * of their own, never taken for stray files by seal or a resume, compared file by file by repro.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { BUNDLE_INDEX_SCHEMA } from "../lib/bundle/format.ts";
import { bundleTree } from "../lib/bundle/nested.ts";
import { verifyBundle } from "../lib/bundle/verify.ts";
import { BundleWriter } from "../lib/bundle/writer.ts";
import { compareBundleTrees } from "../lib/repro/compare.ts";
import { reproduceBundle } from "../lib/repro/reproduce.ts";
import { foreignFiles } from "../lib/runner/clear_bundle.ts";
import { prepareResume } from "../lib/runner/resume.ts";

const tmp = () => Deno.makeTempDirSync({ prefix: "bundle_nested_test_" });

/** A sealed member bundle at `dir` with a deterministic metrics file and a run-specific log. */
async function member(dir: string, loss: number, status: "completed" | null = "completed") {
  const b = new BundleWriter(dir, "member", "00000000000000aa");
  await b.setStatus("running");
  await b.writeFile("manifest.json", '{"kind":"x"}\n', { deterministic: true });
  await b.appendJsonl("metrics.jsonl", { step: 1, loss }, { deterministic: true });
  await b.writeFile("log.txt", `ran at ${Math.random()}\n`, { deterministic: false });
  if (status) await b.seal(status);
}

/** An outer bundle holding two members; `adopt` lists them by their bundle.json. */
async function outer(
  opts: { adopt: boolean; status?: "completed" | "failed"; loss?: number } = { adopt: true },
): Promise<string> {
  const dir = tmp();
  const b = new BundleWriter(dir, "sweep", "00000000000000bb");
  await b.setStatus("running");
  await b.writeFile("plan.json", "{}\n", { deterministic: true });
  for (const [i, seed] of [0, 1].entries()) {
    await member(join(dir, "members", "a", `s${seed}`), (opts.loss ?? 0.5) + i);
    if (opts.adopt) await b.adoptFile(`members/a/s${seed}/bundle.json`, { deterministic: false });
  }
  const index = await b.seal(opts.status ?? "completed");
  assert.equal(index.status, opts.status ?? "completed", "members are not stray files");
  return dir;
}

Deno.test("an adopted nested bundle is listed by its bundle.json alone, and the outer verifies", async () => {
  const dir = await outer();
  const index = BUNDLE_INDEX_SCHEMA.parse(
    JSON.parse(await Deno.readTextFile(join(dir, "bundle.json"))),
  );
  assert.deepEqual(index.files.map((f) => f.path), [
    "members/a/s0/bundle.json",
    "members/a/s1/bundle.json",
    "plan.json",
    "status.json",
  ]);
  const tree = await bundleTree(dir);
  assert.deepEqual(tree.nested, ["members/a/s0", "members/a/s1"]);
  assert.deepEqual(tree.files, ["bundle.json", "plan.json", "status.json"]);
  const v = await verifyBundle(dir);
  assert.ok(v.ok, v.problems.join("; "));
});

Deno.test("verify of the outer bundle verifies its members: a changed member file is named", async () => {
  const dir = await outer();
  const f = join(dir, "members/a/s1/metrics.jsonl");
  await Deno.writeTextFile(f, (await Deno.readTextFile(f)).replace("1.5", "2.5"));
  const v = await verifyBundle(dir);
  assert.equal(v.ok, false);
  assert.ok(
    v.problems.some((p) => p.startsWith("members/a/s1/metrics.jsonl: sha256")),
    v.problems.join("; "),
  );
  // A member's index swapped for another valid one changes the listed sha256 of bundle.json.
  const other = tmp();
  await member(other, 9);
  await Deno.copyFile(join(other, "bundle.json"), join(dir, "members/a/s0/bundle.json"));
  const w = await verifyBundle(dir);
  assert.ok(w.problems.some((p) => p.startsWith("members/a/s0/bundle.json: sha256")));
});

Deno.test("an unlisted member: a problem in a completed outer bundle, expected in a failed one", async () => {
  const completed = await outer({ adopt: false });
  const v = await verifyBundle(completed);
  assert.deepEqual(v.problems, [
    "members/a/s0/: a bundle inside this one that bundle.json does not list",
    "members/a/s1/: a bundle inside this one that bundle.json does not list",
  ]);
  const failed = await outer({ adopt: false, status: "failed" });
  const w = await verifyBundle(failed);
  assert.ok(w.ok, w.problems.join("; "));
  // A stray plain file beside the members is still reported.
  await Deno.writeTextFile(join(failed, "members", "note.txt"), "x");
  assert.deepEqual((await verifyBundle(failed)).problems, [
    "members/note.txt: on disk but not listed in bundle.json",
  ]);
});

Deno.test("a folder is a nested bundle only when it holds a bundle's status.json or index", async () => {
  const dir = tmp();
  await Deno.mkdir(join(dir, "x"));
  await Deno.writeTextFile(join(dir, "x", "status.json"), '{"not":"a status"}');
  await Deno.writeTextFile(join(dir, "x", "data.bin"), "1");
  // A link to a real status.json does not make one either (links are never followed).
  const real = join(tmp(), "status.json");
  await Deno.writeTextFile(
    real,
    JSON.stringify({ status: "running", experiment: "e", runId: "r", updatedAt: "t" }),
  );
  await Deno.mkdir(join(dir, "y"));
  await Deno.symlink(real, join(dir, "y", "status.json"));
  assert.deepEqual(await bundleTree(dir), {
    files: ["x/data.bin", "x/status.json"],
    odd: [{ path: "y/status.json", kind: "a symbolic link" }],
    nested: [],
  });
  await Deno.copyFile(real, join(dir, "x", "status.json"));
  assert.deepEqual((await bundleTree(dir)).nested, ["x"]);
});

Deno.test("a resumed outer run keeps the unlisted members' files (they are not crash leftovers)", async () => {
  const dir = tmp();
  const b = new BundleWriter(dir, "sweep", "00000000000000bb");
  await b.setStatus("running");
  await b.writeFile("plan.json", "{}\n", { deterministic: true });
  await member(join(dir, "members", "a", "s0"), 1, null); // still running: no bundle.json
  await Deno.writeTextFile(join(dir, "leftover.txt"), "a crash left me");
  const again = new BundleWriter(dir, "sweep", "00000000000000bb");
  again.register("plan.json", { deterministic: true });
  const notes: string[] = [];
  await prepareResume(again, (m) => notes.push(m));
  assert.deepEqual(notes, ["resume: removed leftover.txt, left unrecorded by the crash"]);
  for (const f of ["status.json", "manifest.json", "metrics.jsonl", "log.txt"]) {
    await Deno.stat(join(dir, "members/a/s0", f)); // throws if it was removed
  }
});

Deno.test("repro compares the deterministic files of nested bundles too", async () => {
  const a = await outer();
  const same = await outer();
  const other = await outer({ adopt: true, loss: 0.25 });
  const index = async (d: string) =>
    BUNDLE_INDEX_SCHEMA.parse(JSON.parse(await Deno.readTextFile(join(d, "bundle.json"))));
  const rows = await compareBundleTrees(a, await index(a), same, await index(same));
  assert.deepEqual(rows.map((r) => [r.path, r.verdict]), [
    ["members/a/s0/manifest.json", "match"],
    ["members/a/s0/metrics.jsonl", "match"],
    ["members/a/s1/manifest.json", "match"],
    ["members/a/s1/metrics.jsonl", "match"],
    ["plan.json", "match"],
  ]);
  const diff = await compareBundleTrees(a, await index(a), other, await index(other));
  assert.deepEqual(diff.filter((r) => r.verdict !== "match").map((r) => r.path), [
    "members/a/s0/metrics.jsonl",
    "members/a/s1/metrics.jsonl",
  ]);
  await Deno.remove(join(same, "members/a/s1"), { recursive: true });
  const missing = await compareBundleTrees(a, await index(a), same, await index(same));
  assert.deepEqual(missing.filter((r) => r.verdict !== "match").map((r) => [r.path, r.verdict]), [
    ["members/a/s1/manifest.json", "MISSING"],
    ["members/a/s1/metrics.jsonl", "MISSING"],
  ]);
});

Deno.test("--force may clear members its run started, and still refuses files no run recorded", async () => {
  const dir = await outer();
  assert.deepEqual(await foreignFiles(dir), []);
  await Deno.writeTextFile(join(dir, "members/a/s1/notes.txt"), "mine");
  assert.deepEqual(await foreignFiles(dir), ["members/a/s1/notes.txt"]);
});

Deno.test("repro of one member wants --out outside the sweep (its default folder is inside)", async () => {
  const dir = await outer();
  await assert.rejects(
    reproduceBundle({ bundleDir: join(dir, "members/a/s0"), kinds: [], root: dir }),
    /members\/a\/s0 is a bundle inside .* \(a sweep's member\): give --out DIR outside it/,
  );
  assert.ok((await verifyBundle(dir)).ok, "nothing was written into the sweep");
});
