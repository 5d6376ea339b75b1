import assert from "node:assert/strict";
import { createGpu } from "../gpu/device.ts";
import { kernel, Recorder } from "../gpu/recorder.ts";

// A WebGPU validation error is asynchronous: without this, a run would log it and go on with
// wrong numbers (seen with an LM-head binding over lavapipe's 128 MiB limit).
Deno.test("a WebGPU validation error makes the readback and every later submit throw", async () => {
  const gpu = await createGpu(); // a device of its own: this test breaks it on purpose
  const k = kernel(
    gpu,
    "copy1",
    `@group(0) @binding(0) var<storage, read_write> a: array<f32>;
     @compute @workgroup_size(1) fn main() { a[0] = 1.0; }`,
  );
  // A buffer without STORAGE usage cannot be bound: the bind group is invalid.
  const bad = gpu.device.createBuffer({ size: 16, usage: GPUBufferUsage.COPY_SRC });
  const rec = new Recorder(gpu);
  rec.dispatch(k, [bad], [], 1);
  const read = rec.read(bad, 0, 4);
  await rec.submit();
  await assert.rejects(read, /WebGPU error made the results invalid/);
  assert.ok(gpu.error);
  assert.throws(() => new Recorder(gpu).submit(), /WebGPU error/);
  gpu.device.destroy();
});
