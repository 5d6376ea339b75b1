import assert from "node:assert/strict";
import { getGpu } from "../gpu/device.ts";
import { uploadBuffer } from "../gpu/buffers.ts";
import { Recorder } from "../gpu/recorder.ts";
import { type LlamaConfig } from "../lib/model/config.ts";
import { tinyTestConfig, writeRandomModel } from "../lib/model/random_model.ts";
import type { Dtype } from "../lib/model/safetensors/format.ts";
import { LlamaModel } from "../lib/model/llama.ts";
import { ForwardPass } from "../lib/model/forward.ts";
import { readModelF64, type RefConfig, refMeanNll, someTokens } from "./reference/llama_ref.ts";

/** Mean next-token NLL over several sequences (each contributes T-1 terms), f64. */
function refBatchNll(c: RefConfig, w: Map<string, Float64Array>, seqs: number[][]): number {
  let sum = 0, n = 0;
  for (const s of seqs) {
    sum += refMeanNll(c, w, s) * (s.length - 1);
    n += s.length - 1;
  }
  return sum / n;
}

/** GPU gradients of the mean next-token NLL of `seqs` (all of length S). */
async function gpuGrads(
  model: LlamaModel,
  seqs: number[][],
  recompute: boolean,
): Promise<Map<string, Float32Array>> {
  const gpu = model.gpu, B = seqs.length, S = seqs[0].length;
  const pass = new ForwardPass(model, B, S, { recompute, headChunkRows: 3 });
  const grads = model.zeroGrads();
  const dlogp = new Float32Array(B * S);
  for (let b = 0; b < B; b++) for (let t = 0; t < S - 1; t++) dlogp[b * S + t] = -1 / (B * (S - 1));
  const rec = new Recorder(gpu);
  pass.forwardLogprobs(
    rec,
    Uint32Array.from(seqs.flat()),
    Uint32Array.from(seqs.flatMap((s) => [...s.slice(1), 0])),
  );
  pass.backward(rec, uploadBuffer(gpu, dlogp, "dlogp"), grads);
  const reads = model.paramNames().map((n) => [n, rec.read(grads.get(n)!)] as const);
  await rec.submit();
  const out = new Map<string, Float32Array>();
  for (const [n, p] of reads) out.set(n, new Float32Array(await p));
  return out;
}

const CASES: { name: string; config: LlamaConfig; dtype: Dtype }[] = [
  {
    name: "F32, untied, GQA",
    config: tinyTestConfig({ vocabSize: 32, intermediateSize: 24 }),
    dtype: "F32",
  },
  {
    name: "BF16, tied, GQA",
    config: tinyTestConfig({ vocabSize: 32, intermediateSize: 24, tieWordEmbeddings: true }),
    dtype: "BF16",
  },
];

for (const tc of CASES) {
  Deno.test(`whole-model gradient matches central differences of the f64 reference: ${tc.name}`, async () => {
    const gpu = await getGpu();
    const dir = await Deno.makeTempDir({ prefix: "model_backward_" });
    try {
      await writeRandomModel(dir, tc.config, { dtype: tc.dtype, seed: 5, std: 0.3 });
      const model = await LlamaModel.load(gpu, dir);
      const ref = await readModelF64(dir);
      const V = tc.config.vocabSize;
      const seqs = [someTokens(5, V, 21), someTokens(5, V, 22)];
      const grads = await gpuGrads(model, seqs, false);
      // Recomputing each layer in the backward gives the very same bits.
      const again = await gpuGrads(model, seqs, true);
      for (const [n, g] of grads) assert.deepEqual(Array.from(again.get(n)!), Array.from(g), n);

      const names = model.paramNames();
      assert.equal(names.includes("lm_head.weight"), !tc.config.tieWordEmbeddings);
      const h = 1e-4;
      for (const name of names) {
        const g = grads.get(name)!;
        const w = ref.weights.get(name)!;
        assert.equal(g.length, w.length, name);
        const gmax = g.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
        assert.ok(gmax > 0, `${name}: gradient is all zeros`);
        // Four indices per tensor: the largest-gradient one and three spread through the tensor.
        let arg = 0;
        for (let i = 0; i < g.length; i++) if (Math.abs(g[i]) > Math.abs(g[arg])) arg = i;
        const picks = [arg, 0, Math.floor(g.length / 2) + 1, g.length - 1];
        for (const i of picks) {
          const w0 = w[i];
          w[i] = w0 + h;
          const up = refBatchNll(ref.config, ref.weights, seqs);
          w[i] = w0 - h;
          const down = refBatchNll(ref.config, ref.weights, seqs);
          w[i] = w0;
          const fd = (up - down) / (2 * h);
          assert.ok(
            Math.abs(g[i] - fd) <= 1e-3 * gmax + 1e-3 * Math.abs(fd) + 1e-6,
            `${name}[${i}]: gpu ${g[i]} vs finite difference ${fd} (tensor max ${gmax})`,
          );
        }
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
