import assert from "node:assert/strict";
import { join } from "node:path";
import { deterministicFiles, runCli, snapshotProgram, writeTinySft } from "./repro_fixtures.ts";

const records = async (dir: string) =>
  (await Deno.readTextFile(join(dir, "reproductions.jsonl"))).trim().split("\n").map((l) =>
    JSON.parse(l)
  );

Deno.test("repro reruns an sft bundle beside it, matches every deterministic file, records it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "repro-cli-" });
  try {
    const program = await snapshotProgram(dir);
    const manifest = await writeTinySft(dir, { steps: 6, checkpointEvery: 3 });
    const a = join(dir, "A");
    const run = await runCli(program, ["exp", manifest, "--out", a]);
    assert.equal(run.code, 0, run.stderr);
    const prov = JSON.parse(await Deno.readTextFile(join(a, "provenance.json")));
    assert.equal(prov.extra.determinism.claim, "bitwise on the same adapter");

    // Two runs of the same manifest: identical deterministic outputs.
    const r1 = await runCli(program, ["repro", a]);
    console.log(r1.stdout);
    assert.equal(r1.code, 0, r1.stderr);
    assert.match(r1.stderr, /REPRODUCED: \d+\/\d+ deterministic files match/);
    for (const f of ["metrics.jsonl", "manifest.json", "checkpoints/step-6/model.safetensors"]) {
      assert.match(r1.stdout, new RegExp(`^${f}\\s+([0-9a-f]{16})\\s+\\1\\s+match$`, "m"), f);
    }
    assert.doesNotMatch(r1.stderr, /warning/);
    assert.deepEqual(await deterministicFiles(join(dir, "A-repro-1")), await deterministicFiles(a));
    const [rec] = await records(a);
    assert.equal(rec.verdict, "reproduced");
    assert.equal(rec.sameCode, true);
    assert.equal(rec.mismatches.length, 0);
    assert.ok(rec.bundle.endsWith("A-repro-1"));
    // The original still verifies with its reproductions annex.
    const v1 = await runCli(program, ["verify", a]);
    assert.equal(v1.code, 0, v1.stderr);

    // Other code that changes one deterministic output: repro warns, names the file, exits 1,
    // and writes A-repro-2 (the first reproduction is never overwritten).
    const sft = join(program, "lib/train/sft.ts");
    const src = await Deno.readTextFile(sft);
    const edited = src.replace("sequences: B * p.gradAccum,", "sequences: B * p.gradAccum + 1,");
    assert.notEqual(edited, src, "the edit must apply");
    await Deno.writeTextFile(sft, edited);
    const r2 = await runCli(program, ["repro", a]);
    console.log(r2.stdout);
    assert.equal(r2.code, 1, r2.stderr);
    assert.match(r2.stderr, /warning: the code version differs/);
    assert.match(r2.stdout, /^metrics\.jsonl\s+[0-9a-f]{16}\s+[0-9a-f]{16}\s+DIFFERS$/m);
    assert.match(r2.stdout, /^checkpoints\/step-6\/model\.safetensors\s.*match$/m);
    assert.match(
      r2.stderr,
      /DIFFERS: 1 of \d+ deterministic files do not match \(metrics\.jsonl\)/,
    );
    const recs = await records(a);
    assert.equal(recs.length, 2);
    assert.equal(recs[1].verdict, "differs");
    assert.equal(recs[1].sameCode, false);
    assert.deepEqual(recs[1].mismatches, ["metrics.jsonl"]);
    assert.ok(recs[1].bundle.endsWith("A-repro-2"));
    assert.equal((await runCli(program, ["verify", a])).code, 0);

    // A record about other bytes is caught by verify, naming the line.
    const text = await Deno.readTextFile(join(a, "reproductions.jsonl"));
    await Deno.writeTextFile(
      join(a, "reproductions.jsonl"),
      text.replace(recs[0].originalRootHash, "0".repeat(64)),
    );
    const v3 = await runCli(program, ["verify", a]);
    assert.equal(v3.code, 1);
    assert.match(v3.stderr, /reproductions\.jsonl:1: records a reproduction of root 0{64}/);

    // A tampered original is refused before anything runs.
    await Deno.writeTextFile(join(a, "reproductions.jsonl"), text);
    await Deno.writeTextFile(join(a, "metrics.jsonl"), "{}\n", { append: true });
    const r3 = await runCli(program, ["repro", a]);
    assert.equal(r3.code, 1);
    assert.match(r3.stderr, /does not verify.*metrics\.jsonl: size/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
