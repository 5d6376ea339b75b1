/**
 * The next-token logits at the end of each of many token prompts: what a judge reads its verdict
 * from without sampling. Prompts are sorted by length and run in batches padded to their longest
 * prompt (one forward pass each, keeping one layer's activations and no [rows, vocab] buffer
 * beyond the read rows); row-invariant kernels make a prompt's logits the same bits alone or in
 * any batch. Each row is handed to a callback as it is read back, so the host never holds more
 * than one batch of vocab-sized rows.
 *
 * @module
 */
import { Recorder } from "../../gpu/recorder.ts";
import { ForwardPass } from "./forward.ts";
import type { LlamaModel } from "./llama.ts";

/** Options of {@link nextTokenLogits}. */
export interface NextTokenLogitsOptions {
  /** Prompts per forward pass. */
  batchSize: number;
  /** Filler after a prompt's end (never seen by its last row); out-of-vocab ids become 0. */
  padId: number;
}

/**
 * Calls `onRow(i, logits)` with prompt i's next-token logits (f32 [vocab], valid only during the
 * call) for every prompt, in batch order.
 */
export async function nextTokenLogits(
  model: LlamaModel,
  prompts: readonly number[][],
  opts: NextTokenLogitsOptions,
  onRow: (i: number, logits: Float32Array) => void,
): Promise<void> {
  if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) {
    throw new Error(`nextTokenLogits: batchSize must be an integer >= 1, got ${opts.batchSize}`);
  }
  const V = model.config.vocabSize;
  prompts.forEach((p, i) => {
    if (p.length === 0) throw new Error(`nextTokenLogits: prompt ${i} is empty`);
  });
  const order = prompts.map((_, i) => i).sort((a, b) =>
    prompts[a].length - prompts[b].length || a - b
  );
  for (let i0 = 0; i0 < order.length; i0 += opts.batchSize) {
    const idx = order.slice(i0, i0 + opts.batchSize);
    const B = idx.length, S = Math.max(...idx.map((i) => prompts[i].length));
    const tokens = new Uint32Array(B * S).fill(opts.padId < V ? opts.padId : 0);
    const rows = idx.map((i, b) => {
      tokens.set(prompts[i], b * S);
      return b * S + prompts[i].length - 1;
    });
    const pass = new ForwardPass(model, B, S, { recompute: true, headChunkRows: 1 });
    try {
      const rec = new Recorder(model.gpu);
      const logits = pass.forwardLogitsAt(rec, tokens, rows);
      const read = rec.read(logits, 0, B * V * 4);
      await rec.submit();
      const all = new Float32Array(await read);
      logits.destroy();
      idx.forEach((i, k) => onRow(i, all.subarray(k * V, (k + 1) * V)));
    } finally {
      pass.destroy();
    }
  }
}
