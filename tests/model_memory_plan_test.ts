/**
 * The memory plan (lib/model/memory_plan.ts) equals what the allocators really create: weights,
 * ForwardPass (training, recompute, forward-only; one and several head chunks), its backward
 * scratch, AdamW and the peak of one generate call.
 */
import assert from "node:assert/strict";
import { getGpu, type Gpu } from "../gpu/device.ts";
import { Recorder } from "../gpu/recorder.ts";
import { RMSNORM_DW_CHUNK_ROWS } from "../gpu/rmsnorm.ts";
import { uploadBuffer } from "../gpu/buffers.ts";
import { LlamaModel } from "../lib/model/llama.ts";
import { ForwardPass } from "../lib/model/forward.ts";
import { generate } from "../lib/model/generate.ts";
import { tinyTestConfig } from "../lib/model/random_model.ts";
import { AdamW, trainableParams } from "../lib/train/optimizer.ts";
import {
  backwardPlan,
  computeCopyBytes,
  forwardPassPlan,
  generationPlan,
  optimizerPlan,
  planTotal,
  weightBytes,
} from "../lib/model/memory_plan.ts";

/** Tracks the storage buffers created (by label prefix) and the peak of those alive. */
async function tracked<T>(
  gpu: Gpu,
  prefix: string,
  body: () => Promise<T> | T,
): Promise<{ result: T; live: number; peak: number }> {
  const device = gpu.device;
  const create = device.createBuffer;
  const live = new Map<GPUBuffer, number>();
  let now = 0, peak = 0;
  device.createBuffer = function (desc: GPUBufferDescriptor) {
    const b = create.call(device, desc);
    const storage = (desc.usage & GPUBufferUsage.STORAGE) !== 0;
    if (storage && (desc.label ?? "").startsWith(prefix)) {
      live.set(b, desc.size);
      now += desc.size;
      peak = Math.max(peak, now);
      const destroy = b.destroy.bind(b);
      b.destroy = () => {
        if (live.has(b)) now -= live.get(b)!;
        live.delete(b);
        destroy();
      };
    }
    return b;
  };
  try {
    const result = await body();
    return { result, live: now, peak };
  } finally {
    device.createBuffer = create;
  }
}

Deno.test("the memory plan equals the bytes the allocators create", async () => {
  const gpu = await getGpu();
  const maxBinding = gpu.device.limits.maxStorageBufferBindingSize;
  const c = tinyTestConfig();
  // Weights: every tensor, f32 and packed BF16 (model.* and lm_head labels).
  for (const storage of ["f32", "bf16"] as const) {
    const w = await tracked(gpu, "", () => LlamaModel.synthetic(gpu, c, 1, storage));
    const names = [...w.result.weights.keys()];
    assert.ok(names.length > 0);
    const sizes = names.reduce((a, n) => a + w.result.w(n).size, 0);
    assert.equal(sizes, weightBytes(c, storage), `weights ${storage}`);
  }
  // The compute copies of precision "bf16" (none in f32).
  for (const precision of ["f32", "bf16"] as const) {
    const m = LlamaModel.synthetic(gpu, c, 1);
    const copies = await tracked(gpu, "", () => m.usePrecision(precision));
    assert.equal(copies.live, computeCopyBytes(c, precision), `compute copies ${precision}`);
    m.destroy();
  }
  const model = LlamaModel.synthetic(gpu, c, 1);
  const V = c.vocabSize;
  const shapes = [
    { B: 2, S: 5 },
    { B: 2, S: 5, recompute: true },
    { B: 3, S: 4, forwardOnly: true },
    { B: 2, S: 6, headChunkRows: 5 },
    { B: 2, S: 6, headChunkRows: 5, forwardOnly: true },
  ];
  for (const shape of shapes) {
    const M = shape.B * shape.S;
    const tokens = new Uint32Array(M).map((_, i) => (i * 7) % V);
    const fwd = await tracked(gpu, "pass.", () => {
      const pass = new ForwardPass(model, shape.B, shape.S, shape);
      pass.forwardLogprobs(new Recorder(gpu), tokens, tokens);
      return pass;
    });
    const pass = fwd.result;
    assert.equal(fwd.live, planTotal(forwardPassPlan(c, shape, maxBinding)), JSON.stringify(shape));
    if (!shape.forwardOnly) {
      const opt = new AdamW(gpu, trainableParams(model));
      const bwd = await tracked(gpu, "backward.", async () => {
        const rec = new Recorder(gpu);
        pass.forwardLogprobs(rec, tokens, tokens);
        pass.backward(rec, uploadBuffer(gpu, new Float32Array(M).fill(-1), "dlogp"), opt.grads);
        await rec.submit();
      });
      assert.equal(bwd.live, planTotal(backwardPlan(c, shape, maxBinding)), JSON.stringify(shape));
      opt.destroy();
    }
    pass.destroy();
  }
  const o = await tracked(gpu, "", () => new AdamW(gpu, trainableParams(model)));
  assert.equal(o.live, planTotal(optimizerPlan(c)), "optimizer");
  o.result.destroy();
  // One generate call: the peak of its buffers (all freed at the end).
  const prompts = [[1, 2, 3], [4, 5], [6, 7, 8, 9, 10]];
  for (const prefillChunkRows of [512, 4]) {
    const g = await tracked(gpu, "gen.", () =>
      generate(model, prompts, {
        maxNewTokens: 6,
        temperature: 1,
        topP: 1,
        seed: 0,
        stream: 0,
        stopIds: [],
        readbackEvery: 4,
        prefillChunkRows,
      }));
    const plan = generationPlan(c, {
      batch: 3,
      maxPromptLen: 5,
      promptTokens: 10,
      maxNewTokens: 6,
      readbackEvery: 4,
      prefillChunkRows,
    });
    assert.equal(g.peak, planTotal(plan), `generate, prefill chunks of ${prefillChunkRows}`);
    assert.equal(g.live, 0, "generate frees everything");
  }
});

Deno.test("a forward-only pass gives the training pass's bits and refuses a backward", async () => {
  const gpu = await getGpu();
  const model = LlamaModel.synthetic(gpu, tinyTestConfig(), 3);
  const B = 2, S = 7, V = model.config.vocabSize;
  const tokens = new Uint32Array(B * S).map((_, i) => (i * 5 + 1) % V);
  const targets = new Uint32Array(B * S).map((_, i) => (i * 3 + 2) % V);
  const read = async (pass: ForwardPass) => {
    const rec = new Recorder(gpu);
    const out = pass.forwardLogprobs(rec, tokens, targets, { entropy: true });
    const a = rec.read(out.logp), b = rec.read(out.entropy!);
    await rec.submit();
    return [new Uint32Array(await a), new Uint32Array(await b)];
  };
  const train = new ForwardPass(model, B, S),
    only = new ForwardPass(model, B, S, { forwardOnly: true });
  assert.deepEqual(await read(only), await read(train));
  assert.notEqual(only.xs[0], only.xs[1]);
  assert.equal(only.xs[2], only.xs[0]);
  assert.throws(
    () =>
      only.backward(new Recorder(gpu), uploadBuffer(gpu, new Float32Array(B * S), "d"), new Map()),
    /planned forward-only/,
  );
  train.destroy();
  only.destroy();
});

Deno.test("the backward plan counts the RMSNorm weight gradient's partials past one chunk", () => {
  const c = tinyTestConfig();
  const line = (S: number) =>
    backwardPlan(c, { B: 2, S }, 2 ** 27).find((l) => l.what.startsWith("RMSNorm weight-gradient"));
  assert.equal(line(RMSNORM_DW_CHUNK_ROWS / 2), undefined, "one chunk: no partials");
  // 2 x 2049 rows = 4098 > 4096: two chunks of hiddenSize f32 partials.
  assert.equal(line(RMSNORM_DW_CHUNK_ROWS / 2 + 1)?.bytes, 2 * c.hiddenSize * 4);
});
