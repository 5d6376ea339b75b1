import assert from "node:assert/strict";
import { join } from "node:path";
import { sha256Hex } from "../lib/util/hash_file.ts";
import { BundleWriter } from "../lib/bundle/writer.ts";
import { prepareResume } from "../lib/runner/resume.ts";

// A process killed between writing a file and recording it in status.json leaves a file on disk
// that the resumed run does not know. Seen in CI: a checkpoint's SHA256SUMS (written last) was
// on disk, so the checkpoint was used, but sealing then failed "written outside the run context".
Deno.test("resume adopts the verified checkpoint's unrecorded files and removes other leftovers", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const enc = new TextEncoder();
    const put = async (rel: string, text: string) => {
      await Deno.mkdir(join(dir, rel, ".."), { recursive: true });
      await Deno.writeFile(join(dir, rel), enc.encode(text));
    };
    const state = '{"step":1,"dataPosition":1}';
    await put("checkpoints/step-1/state.json", state);
    await put(
      "checkpoints/step-1/SHA256SUMS",
      `${await sha256Hex(enc.encode(state))}  state.json\n`,
    );
    await put("checkpoints/step-2/state.json", '{"step":2}'); // no SHA256SUMS: incomplete
    await put("metrics.jsonl", '{"step":1}\n{"step":2}\n');
    await put("stray.tmp", "half");

    const writer = new BundleWriter(dir, "e", "r");
    // What status.json had recorded before the kill: SHA256SUMS and step-2 are not in it.
    writer.register("metrics.jsonl", { deterministic: true });
    writer.register("checkpoints/step-1/state.json", { deterministic: true });
    const notes: string[] = [];
    const point = await prepareResume(writer, (m) => notes.push(m));

    assert.equal(point.checkpoint, "checkpoints/step-1");
    assert.equal(point.step, 1);
    assert.deepEqual(writer.files.get("checkpoints/step-1/SHA256SUMS"), { deterministic: true });
    assert.equal(writer.files.has("checkpoints/step-2/state.json"), false);
    for (const gone of ["checkpoints/step-2/state.json", "stray.tmp"]) {
      await assert.rejects(Deno.stat(join(dir, gone)), Deno.errors.NotFound, gone);
    }
    assert.equal(await Deno.readTextFile(join(dir, "metrics.jsonl")), '{"step":1}\n');
    assert.ok(
      notes.some((n) => n.includes("adopted checkpoints/step-1/SHA256SUMS")),
      notes.join("\n"),
    );
    assert.ok(notes.some((n) => n.includes("removed stray.tmp")), notes.join("\n"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
