import assert from "node:assert/strict";
import { join } from "node:path";
import { atomicWriteFile, atomicWriteWith } from "../lib/util/atomic_write.ts";
import { codeVersion } from "../lib/bundle/code_version.ts";
import { BUNDLE_FORMAT } from "../lib/bundle/format.ts";
import { hashPath, listFiles, rootHashOf } from "../lib/bundle/hash.ts";
import { hashFile, sha256Hex } from "../lib/util/hash_file.ts";
import { runIdOf } from "../lib/bundle/run_id.ts";
import { verifyBundle } from "../lib/bundle/verify.ts";
import { BundleWriter } from "../lib/bundle/writer.ts";

const tmp = () => Deno.makeTempDirSync({ prefix: "bundle_test_" });

/** A sealed bundle with files of every sort: JSON, JSONL, binary, nested. */
async function sampleBundle(): Promise<string> {
  const dir = tmp();
  const b = new BundleWriter(dir, "sample", "0123456789abcdef");
  await b.setStatus("running");
  await b.writeFile("manifest.json", '{"kind":"x"}\n', { deterministic: true });
  await b.appendJsonl("metrics.jsonl", { step: 1, loss: 2.5 }, { deterministic: true });
  await b.appendJsonl("metrics.jsonl", { step: 2, loss: NaN }, { deterministic: true });
  await b.appendJsonl("timings.jsonl", { ms: 3 }, { deterministic: false });
  await b.writeFile("checkpoints/step-2/model.bin", new Uint8Array([0, 1, 2, 255]), {
    deterministic: true,
  });
  await b.writeFileWith("charts/big.bin", { deterministic: true }, async (f) => {
    await f.write(new Uint8Array(3000).fill(7));
  });
  const index = await b.seal("completed");
  assert.equal(index.status, "completed");
  return dir;
}

Deno.test("a sealed bundle lists every file with size, sha256 and a root hash, and verifies", async () => {
  const dir = await sampleBundle();
  const index = JSON.parse(await Deno.readTextFile(join(dir, "bundle.json")));
  assert.equal(index.format, BUNDLE_FORMAT);
  assert.deepEqual(index.files.map((f: { path: string }) => f.path), [
    "charts/big.bin",
    "checkpoints/step-2/model.bin",
    "manifest.json",
    "metrics.jsonl",
    "status.json",
    "timings.jsonl",
  ]);
  for (const f of index.files) {
    const bytes = await Deno.readFile(join(dir, f.path));
    assert.equal(f.size, bytes.length);
    assert.equal(f.sha256, sha256Hex(bytes));
  }
  const lines = index.files.map((f: { path: string; sha256: string }) =>
    `${f.path}\0${f.sha256}\n`
  );
  assert.equal(index.rootHash, sha256Hex(lines.join("")));
  assert.equal(
    index.files.find((f: { path: string }) => f.path === "timings.jsonl").deterministic,
    false,
  );
  assert.equal(
    await Deno.readTextFile(join(dir, "metrics.jsonl")),
    '{"step":1,"loss":2.5}\n{"step":2,"loss":"NaN"}\n',
  );
  const r = await verifyBundle(dir);
  assert.deepEqual(r.problems, []);
  assert.ok(r.ok);
  assert.equal(r.fileCount, 6);
  assert.equal(r.rootHash, index.rootHash);
});

Deno.test("verify names the file when one byte of ANY file (bundle.json included) is flipped", async () => {
  const dir = await sampleBundle();
  const files = [...await listFiles(dir)];
  assert.ok(files.includes("bundle.json"));
  for (const rel of files) {
    const path = join(dir, rel);
    const orig = await Deno.readFile(path);
    for (const at of [0, Math.floor(orig.length / 2), orig.length - 1]) {
      const bad = orig.slice();
      bad[at] ^= 0x01;
      await Deno.writeFile(path, bad);
      const r = await verifyBundle(dir);
      assert.ok(!r.ok, `flipping byte ${at} of ${rel} went unnoticed`);
      assert.ok(
        r.problems.some((p) => p.startsWith(`${rel}:`)),
        `flipping byte ${at} of ${rel}: problems do not name it: ${r.problems.join(" | ")}`,
      );
    }
    await Deno.writeFile(path, orig);
    assert.ok((await verifyBundle(dir)).ok);
  }
});

Deno.test("verify reports missing files, extra files and a missing index", async () => {
  const dir = await sampleBundle();
  await Deno.remove(join(dir, "checkpoints/step-2/model.bin"));
  await Deno.writeTextFile(join(dir, "charts/extra.txt"), "stray");
  const r = await verifyBundle(dir);
  assert.ok(!r.ok);
  assert.ok(
    r.problems.includes("checkpoints/step-2/model.bin: listed but missing"),
    r.problems.join("|"),
  );
  assert.ok(r.problems.includes("charts/extra.txt: on disk but not listed in bundle.json"));
  await Deno.remove(join(dir, "bundle.json"));
  const r2 = await verifyBundle(dir);
  assert.ok(!r2.ok);
  assert.match(
    r2.problems[0],
    /^bundle\.json: missing; the run never finished \(status\.json: completed\)/,
  );
  const r3 = await verifyBundle(join(dir, "nope"));
  assert.match(r3.problems[0], /no such directory/);
});

Deno.test("verify rejects symlinks (added, or replacing a listed file or folder) and FIFOs", async () => {
  const added = await sampleBundle();
  await Deno.symlink("/etc/passwd", join(added, "passwd"));
  let r = await verifyBundle(added);
  assert.ok(!r.ok);
  assert.deepEqual(r.problems, [
    "passwd: a symbolic link in the bundle (bundles hold only regular files)",
  ]);

  const replaced = await sampleBundle();
  const outside = join(tmp(), "copy.bin");
  await Deno.copyFile(join(replaced, "checkpoints/step-2/model.bin"), outside);
  await Deno.remove(join(replaced, "checkpoints/step-2/model.bin"));
  await Deno.symlink(outside, join(replaced, "checkpoints/step-2/model.bin"));
  r = await verifyBundle(replaced);
  assert.ok(!r.ok, "same bytes through a link must not verify");
  assert.ok(
    r.problems.includes(
      "checkpoints/step-2/model.bin: listed, but checkpoints/step-2/model.bin is a symbolic " +
        "link, not a regular file (bundles hold only regular files)",
    ),
    r.problems.join("|"),
  );

  const folder = await sampleBundle();
  const elsewhere = tmp();
  await Deno.rename(join(folder, "checkpoints"), join(elsewhere, "checkpoints"));
  await Deno.symlink(join(elsewhere, "checkpoints"), join(folder, "checkpoints"));
  r = await verifyBundle(folder);
  assert.ok(!r.ok);
  assert.ok(r.problems.some((p) => /checkpoints is a symbolic link, not a folder/.test(p)));

  const fifo = await sampleBundle();
  const mk = await new Deno.Command("mkfifo", { args: [join(fifo, "pipe")] }).output();
  assert.ok(mk.success, "mkfifo");
  r = await verifyBundle(fifo);
  assert.deepEqual(r.problems, [
    "pipe: a FIFO (named pipe) in the bundle (bundles hold only regular files)",
  ]);
});

Deno.test("the writer never writes through a link, and seal names links as problems", async () => {
  const dir = tmp();
  const outside = tmp();
  const b = new BundleWriter(dir, "e", "r");
  await b.setStatus("running");
  await Deno.symlink(outside, join(dir, "checkpoints"));
  await assert.rejects(
    () => b.writeFile("checkpoints/x.bin", "x", { deterministic: true }),
    /will not write checkpoints\/x\.bin: checkpoints is a symbolic link, not a folder/,
  );
  await Deno.writeTextFile(join(outside, "log.txt"), "theirs\n");
  await Deno.symlink(join(outside, "log.txt"), join(dir, "log.txt"));
  await assert.rejects(
    () => b.appendText("log.txt", "mine\n", { deterministic: false }),
    /log\.txt is a symbolic link, not a regular file/,
  );
  assert.equal(await Deno.readTextFile(join(outside, "log.txt")), "theirs\n");
  assert.deepEqual([...Deno.readDirSync(outside)].map((e) => e.name), ["log.txt"]);
  const index = await b.seal("completed");
  assert.equal(index.status, "failed");
  const status = JSON.parse(await Deno.readTextFile(join(dir, "status.json")));
  assert.match(status.error, /checkpoints is a symbolic link; bundles hold only regular files/);
});

Deno.test("seal turns a completed run with stray or unwritten files into a failed one", async () => {
  const dir = tmp();
  const b = new BundleWriter(dir, "e", "r");
  await b.setStatus("running");
  b.register("never.bin", { deterministic: true });
  await Deno.writeTextFile(join(dir, "sneaky.txt"), "written behind the writer's back");
  const index = await b.seal("completed");
  assert.equal(index.status, "failed");
  const status = JSON.parse(await Deno.readTextFile(join(dir, "status.json")));
  assert.equal(status.status, "failed");
  assert.match(status.error, /sneaky\.txt was written outside the run context/);
  assert.match(status.error, /never\.bin was registered but never written/);
  assert.ok((await verifyBundle(dir)).ok, "a failed bundle is still intact");
  await assert.rejects(
    () => b.writeFile("late.txt", "x", { deterministic: true }),
    /already sealed/,
  );
});

Deno.test("the writer rejects unsafe paths and a change of determinism", async () => {
  const b = new BundleWriter(tmp(), "e", "r");
  for (const bad of ["../x", "/abs", "a//b", "a/./b", "", "bundle.json"]) {
    assert.throws(() => b.register(bad, { deterministic: true }), /bundle file/, bad);
  }
  await b.appendJsonl("m.jsonl", { a: 1 }, { deterministic: true });
  await assert.rejects(
    () => b.appendJsonl("m.jsonl", { a: 1 }, { deterministic: false }),
    /cannot change/,
  );
});

Deno.test("atomic writes leave no temporary file, and a failed write leaves nothing", async () => {
  const dir = tmp();
  await atomicWriteFile(join(dir, "a/b.txt"), "one");
  await atomicWriteFile(join(dir, "a/b.txt"), "two");
  assert.equal(await Deno.readTextFile(join(dir, "a/b.txt")), "two");
  await assert.rejects(() =>
    atomicWriteWith(join(dir, "a/c.txt"), async (f) => {
      await f.write(new Uint8Array([1]));
      throw new Error("disk on fire");
    }), /disk on fire/);
  assert.deepEqual(await listFiles(dir), ["a/b.txt"]);
});

Deno.test("hashes of files and trees; the run id follows manifest, inputs and code", async () => {
  const dir = tmp();
  await Deno.writeTextFile(join(dir, "x"), "abc");
  assert.deepEqual(await hashFile(join(dir, "x")), {
    size: 3,
    sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  });
  await Deno.mkdir(join(dir, "d"));
  await Deno.writeTextFile(join(dir, "d/y"), "abc");
  assert.equal(
    await hashPath(join(dir, "d")),
    rootHashOf([{ path: "y", sha256: sha256Hex("abc") }]),
  );
  const id = runIdOf({ a: 1, b: 2 }, { w: "h" }, "c");
  assert.match(id, /^[0-9a-f]{16}$/);
  assert.equal(runIdOf({ b: 2, a: 1 }, { w: "h" }, "c"), id, "key order does not matter");
  assert.notEqual(runIdOf({ a: 1, b: 3 }, { w: "h" }, "c"), id);
  assert.notEqual(runIdOf({ a: 1, b: 2 }, { w: "h2" }, "c"), id);
  assert.notEqual(runIdOf({ a: 1, b: 2 }, { w: "h" }, "c2"), id);
});

Deno.test("the code version changes when any source file changes on disk", async () => {
  const root = tmp();
  await Deno.mkdir(join(root, "lib/x"), { recursive: true });
  await Deno.writeTextFile(join(root, "main.ts"), "main");
  await Deno.writeTextFile(join(root, "lib/x/a.ts"), "a");
  await Deno.writeTextFile(join(root, "README.md"), "not code");
  const v1 = await codeVersion(root);
  await Deno.writeTextFile(join(root, "README.md"), "docs changed");
  assert.equal(await codeVersion(root), v1);
  await Deno.writeTextFile(join(root, "lib/x/a.ts"), "b");
  const v2 = await codeVersion(root);
  assert.notEqual(v2, v1);
  await Deno.writeTextFile(join(root, "lib/x/new.ts"), "new");
  assert.notEqual(await codeVersion(root), v2);
});
