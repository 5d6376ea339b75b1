/**
 * Buffers past one storage binding (gpu/window.ts): windows are aligned and cover the tensor,
 * and with the binding limit lowered so that the embedding, the LM head and the weight fills run
 * window by window, a model gets the same weights, log-probs and generated tokens bit for bit.
 */
import assert from "node:assert/strict";
import { getGpu, type Gpu } from "../gpu/device.ts";
import { createBuffer, readU32 } from "../gpu/buffers.ts";
import { Recorder } from "../gpu/recorder.ts";
import { rowWindows } from "../gpu/window.ts";
import { LlamaModel } from "../lib/model/llama.ts";
import { ForwardPass } from "../lib/model/forward.ts";
import { generate } from "../lib/model/generate.ts";
import { tinyTestConfig } from "../lib/model/random_model.ts";

Deno.test("row windows are aligned, within the limit, and cover every row once", async () => {
  const gpu = await getGpu();
  const align = gpu.device.limits.minStorageBufferOffsetAlignment;
  for (const [rows, rowBytes, limit] of [[1000, 12, 4096], [77, 256, 1024], [5000, 4, 2048]]) {
    const buf = createBuffer(gpu, rows * rowBytes, "t");
    const ws = rowWindows(gpu, buf, rows, rowBytes, limit);
    assert.ok(ws.length > 1);
    let next = 0;
    for (const w of ws) {
      assert.equal(w.row0, next);
      next += w.rows;
      const b = w.binding as { buffer: GPUBuffer; offset: number; size: number };
      assert.equal(b.offset % align, 0, "offset aligned");
      assert.ok(b.size <= limit && b.size >= w.rows * rowBytes, `size ${b.size}`);
    }
    assert.equal(next, rows);
    buf.destroy();
  }
  const small = createBuffer(gpu, 64, "small");
  assert.deepEqual(rowWindows(gpu, small, 16, 4, 4096), [{ row0: 0, rows: 16, binding: small }]);
});

/** Runs `body` with the engine's binding limit lowered to `limit` bytes. */
async function withLimit<T>(gpu: Gpu, limit: number, body: () => Promise<T>): Promise<T> {
  const own = gpu.bindingLimit;
  gpu.bindingLimit = limit;
  try {
    return await body();
  } finally {
    gpu.bindingLimit = own;
  }
}

Deno.test("a model past the binding limit gives the same weights, log-probs and tokens", async () => {
  const gpu = await getGpu();
  const c = tinyTestConfig({ tieWordEmbeddings: true }); // embedding [64, 32] = 8 KiB
  const V = c.vocabSize, B = 2, S = 6;
  const tokens = new Uint32Array(B * S).map((_, i) => (i * 11 + 3) % V);
  const targets = new Uint32Array(B * S).map((_, i) => (i * 5 + 1) % V);
  const prompts = [[1, 2, 3, 4], [5, 6]];
  const run = async (storage: "f32" | "bf16") => {
    const model = LlamaModel.synthetic(gpu, c, 7, storage);
    const weights: Uint32Array[] = [];
    for (const name of [...model.weights.keys()].sort()) {
      weights.push(await readU32(gpu, model.w(name)));
    }
    const pass = new ForwardPass(model, B, S, { forwardOnly: true });
    const rec = new Recorder(gpu);
    const read = rec.read(pass.forwardLogprobs(rec, tokens, targets).logp);
    await rec.submit();
    const logp = new Uint32Array(await read);
    pass.destroy();
    const g = await generate(model, prompts, {
      maxNewTokens: 5,
      temperature: 1,
      topP: 0.9,
      seed: 2,
      stream: 0,
      stopIds: [],
    });
    return { weights, logp, tokens: g.tokens, logprobs: g.logprobs };
  };
  for (const storage of ["f32", "bf16"] as const) {
    const whole = await run(storage);
    // 1 KiB: the embedding and LM head in 8 windows, every fill and pack in windows too.
    const windowed = await withLimit(gpu, 1024, () => run(storage));
    assert.deepEqual(windowed.weights, whole.weights, `${storage} weights`);
    assert.deepEqual(windowed.logp, whole.logp, `${storage} log-probs`);
    assert.deepEqual(windowed.tokens, whole.tokens, `${storage} tokens`);
    assert.deepEqual(windowed.logprobs, whole.logprobs, `${storage} generation log-probs`);
  }
});
