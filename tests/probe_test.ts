import assert from "node:assert/strict";
import { join } from "node:path";
import { getGpu } from "../gpu/device.ts";
import { createBuffer, readF32, uploadBuffer } from "../gpu/buffers.ts";
import { Recorder } from "../gpu/recorder.ts";
import { uniformMatrix } from "../lib/probe/gpu_probe.ts";
import { matmulErrors, probeMatmul, referenceMatmul } from "../lib/probe/probe_matmul.ts";
import { cli, MAIN, ROOT } from "./cli_helpers.ts";

const SMALL = [
  "--set",
  "shapes=[[3,5,7],[17,33,9],[1,40,2]]",
  "--set",
  "timing.shape=[32,32,32]",
  "--set",
  "timing.repeats=2",
];

Deno.test("the probe matmul matches the TypeScript reference, ragged shapes included", async () => {
  const gpu = await getGpu();
  for (const [m, k, n] of [[1, 1, 1], [5, 3, 2], [16, 16, 16], [17, 31, 33], [40, 7, 1]]) {
    const a = uniformMatrix(m * k, m), b = uniformMatrix(k * n, n + 100);
    const ga = uploadBuffer(gpu, a, "a"), gb = uploadBuffer(gpu, b, "b");
    const gc = createBuffer(gpu, m * n * 4, "c");
    const rec = new Recorder(gpu);
    probeMatmul(rec, ga, gb, gc, m, k, n);
    await rec.submit();
    const err = matmulErrors(await readF32(gpu, gc, m * n), referenceMatmul(a, b, m, k, n));
    assert.ok(err.maxScaledError < 1e-6, `${m}x${k}x${n}: ${JSON.stringify(err)}`);
  }
});

Deno.test("matmulErrors catches a wrong element and NaN", () => {
  const a = uniformMatrix(6, 1), b = uniformMatrix(6, 2);
  const ref = referenceMatmul(a, b, 2, 3, 2);
  const got = Float32Array.from(ref.c);
  assert.ok(matmulErrors(got, ref).maxScaledError < 1e-6);
  got[3] += 0.5;
  const e = matmulErrors(got, ref);
  assert.equal(e.worstIndex, 3);
  assert.ok(e.maxAbsError > 0.49);
  got[1] = NaN;
  assert.ok(Number.isNaN(matmulErrors(got, ref).maxScaledError));
  assert.deepEqual(Array.from(uniformMatrix(3, 9)), Array.from(uniformMatrix(3, 9)));
});

Deno.test("gpu-probe end to end: completed bundle, verify OK, a flipped byte is named", async () => {
  const out = join(await Deno.makeTempDir({ prefix: "probe_test_" }), "bundle");
  const r = await cli(["exp", "gpu-probe", "--out", out, ...SMALL]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), out);
  const status = JSON.parse(await Deno.readTextFile(join(out, "status.json")));
  assert.equal(status.status, "completed");
  const metrics = (await Deno.readTextFile(join(out, "metrics.jsonl"))).trim().split("\n")
    .map((l) => JSON.parse(l));
  assert.deepEqual(metrics.map((x) => [x.m, x.k, x.n, x.pass]), [
    [3, 5, 7, true],
    [17, 33, 9, true],
    [1, 40, 2, true],
  ]);
  const timings = JSON.parse((await Deno.readTextFile(join(out, "timings.jsonl"))).trim());
  assert.ok(timings.medianMs > 0 && timings.gflops > 0);
  const prov = JSON.parse(await Deno.readTextFile(join(out, "provenance.json")));
  assert.equal(typeof prov.gpu.description, "string");
  assert.ok(prov.gpu.requestedLimits.maxStorageBufferBindingSize > 0);
  assert.ok(Array.isArray(prov.gpu.features));
  assert.match(prov.denoLockSha256, /^[0-9a-f]{64}$/);

  const ok = await cli(["verify", out]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^OK .*: 6 files, root [0-9a-f]{64} \(status completed\)/);

  const path = join(out, "metrics.jsonl");
  const orig = await Deno.readFile(path);
  const bad = orig.slice();
  bad[10] ^= 0x20;
  await Deno.writeFile(path, bad);
  const v = await cli(["verify", out]);
  assert.equal(v.code, 1);
  assert.match(v.stderr, /metrics\.jsonl: sha256 [0-9a-f]+, listed [0-9a-f]+/);
  await Deno.writeFile(path, orig);

  const again = await cli(["exp", "gpu-probe", "--out", out, ...SMALL]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /already holds a completed run/);
  const resumed = await cli(["exp", "gpu-probe", "--out", out, "--resume", ...SMALL]);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, /already complete/);
});

Deno.test("gpu-probe fails cleanly when the matmul misses its tolerance", async () => {
  const out = join(await Deno.makeTempDir({ prefix: "probe_test_" }), "bundle");
  const r = await cli(["exp", "gpu-probe", "--out", out, ...SMALL, "--set", "tolerance=1e-30"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /differs from the TypeScript reference at 3x5x7/);
  assert.doesNotMatch(r.stderr, /\n\s+at .*:\d+:\d+/);
  const status = JSON.parse(await Deno.readTextFile(join(out, "status.json")));
  assert.equal(status.status, "failed");
  assert.equal((await cli(["verify", out])).code, 0, "a failed bundle is still intact");
});

Deno.test("gpu-probe without a usable adapter fails saying what to install", async () => {
  if (Deno.build.os !== "linux") return;
  const out = join(await Deno.makeTempDir({ prefix: "probe_test_" }), "bundle");
  // An empty Vulkan driver list leaves the Vulkan backend with no adapter.
  const r = await cli(["exp", "gpu-probe", "--out", out, ...SMALL], {
    VK_ICD_FILENAMES: "/nonexistent/icd.json",
    DENO_WEBGPU_BACKEND: "vulkan",
  });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /error: gpu-probe failed: .*mesa-vulkan-drivers/);
  assert.doesNotMatch(r.stderr, /\n\s+at .*:\d+:\d+/);
  const status = JSON.parse(await Deno.readTextFile(join(out, "status.json")));
  assert.equal(status.status, "failed");
});

Deno.test("Ctrl-C during gpu-probe marks the bundle interrupted and exits 130", async () => {
  if (Deno.build.os === "windows") return;
  const out = join(await Deno.makeTempDir({ prefix: "probe_test_" }), "bundle");
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MAIN,
      "exp",
      "gpu-probe",
      "--out",
      out,
      ...SMALL,
      "--set",
      "timing.repeats=100000",
    ],
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const dec = new TextDecoder();
  let seen = "";
  const reader = child.stderr.getReader();
  while (!seen.includes("timing matmul")) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += dec.decode(value);
  }
  child.kill("SIGINT");
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += dec.decode(value);
  }
  const { code } = await child.status;
  assert.equal(code, 130, seen);
  const status = JSON.parse(await Deno.readTextFile(join(out, "status.json")));
  assert.equal(status.status, "interrupted");
  assert.equal((await cli(["verify", out])).code, 0);
});
