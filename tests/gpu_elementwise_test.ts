import assert from "node:assert/strict";
import { getGpu } from "../gpu/device.ts";
import { createBuffer, readF32, uploadBuffer } from "../gpu/buffers.ts";
import { Recorder } from "../gpu/recorder.ts";
import { add, axpy } from "../gpu/elementwise.ts";
import { randn } from "./helpers.ts";

Deno.test("add and axpy match TypeScript, including a ragged tail", async () => {
  const gpu = await getGpu();
  for (const n of [1, 255, 256, 1000]) {
    const a = randn(n, 1), b = randn(n, 2);
    const ga = uploadBuffer(gpu, a, "a"), gb = uploadBuffer(gpu, b, "b");
    const gy = createBuffer(gpu, n * 4, "y");
    const rec = new Recorder(gpu);
    add(rec, ga, gb, gy, n);
    axpy(rec, ga, gy, n, 0.5);
    await rec.submit();
    const y = await readF32(gpu, gy, n);
    const ref = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      ref[i] = Math.fround(Math.fround(a[i] + b[i]) + Math.fround(0.5 * a[i]));
    }
    assert.deepEqual(Array.from(y), Array.from(ref));
  }
});
