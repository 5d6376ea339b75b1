/**
 * onnxruntime (the `onnxruntime-node` package, CPU execution provider) driving an exported
 * Llama the way ONNX generation tooling does: logits of whole sequences, greedy generation
 * through the past-key/value inputs, and reward-model scores.
 *
 * onnxruntime-node is a native addon whose Linux x64 build ships inside the npm package (its
 * install script, which Deno does not run, only fetches optional CUDA files). It is loaded by
 * dynamic import() on first use, so the engine's module graph never carries it.
 *
 * @module
 */
import type * as OrtTypes from "onnxruntime-node";
import type { LlamaConfig } from "../model/config.ts";
import { UserError } from "../util/user_error.ts";

type Ort = typeof OrtTypes;
let ortModule: Promise<Ort> | null = null;

/** Loads onnxruntime-node once; the error says what failed and how to get it. */
export function loadOrt(): Promise<Ort> {
  ortModule ??= import("onnxruntime-node").catch((e) => {
    ortModule = null;
    throw new UserError(
      `onnxruntime-node could not be loaded (${(e as Error).message}); it comes with the ` +
        `project's npm dependencies (deno.json): run \`deno install\` with the npm registry ` +
        `reachable`,
    );
  });
  return ortModule;
}

/** Options of {@link OrtLlama.open}. */
export interface OrtOptions {
  /** Threads of one operator (onnxruntime's default: one per physical core). */
  intraOpThreads?: number;
}

/** Result of {@link OrtLlama.greedy}. */
export interface OrtGreedyResult {
  /** New tokens per prompt (a sequence ends with its stop token, kept). */
  tokens: number[][];
  stopped: boolean[];
  /** Wall time of the prompt's run (the first new token included) and of the decode steps. */
  prefillSeconds: number;
  decodeSeconds: number;
  /** Decode steps run (each feeds one token per sequence). */
  decodeSteps: number;
}

const argmaxRow = (x: Float32Array, base: number, n: number): number => {
  let best = 0, bestV = x[base];
  for (let v = 1; v < n; v++) {
    if (x[base + v] > bestV) { // strict: the lowest index wins ties, as the engine's sampler
      bestV = x[base + v];
      best = v;
    }
  }
  return best;
};

/** An exported Llama in an onnxruntime session. */
export class OrtLlama {
  readonly ort: Ort;
  readonly session: OrtTypes.InferenceSession;
  readonly config: LlamaConfig;

  private constructor(ort: Ort, session: OrtTypes.InferenceSession, config: LlamaConfig) {
    this.ort = ort;
    this.session = session;
    this.config = config;
  }

  /**
   * Opens the ONNX file at `path` (its external data, if any, beside it) for `config`, the
   * config.json it was exported from. The inputs the file declares are checked against it.
   */
  static async open(path: string, config: LlamaConfig, opts: OrtOptions = {}): Promise<OrtLlama> {
    const ort = await loadOrt();
    const session = await ort.InferenceSession.create(path, {
      executionProviders: ["cpu"],
      graphOptimizationLevel: "all",
      executionMode: "sequential",
      interOpNumThreads: 1,
      ...(opts.intraOpThreads ? { intraOpNumThreads: opts.intraOpThreads } : {}),
    });
    const want = ["input_ids", "attention_mask"];
    if (config.architecture === "LlamaForCausalLM") {
      want.push("position_ids");
      for (let l = 0; l < config.numLayers; l++) {
        want.push(`past_key_values.${l}.key`, `past_key_values.${l}.value`);
      }
    }
    if (JSON.stringify(session.inputNames) !== JSON.stringify(want)) {
      await session.release();
      throw new UserError(
        `${path}: inputs ${JSON.stringify(session.inputNames)} do not match a ` +
          `${config.architecture} of ${config.numLayers} layers (${JSON.stringify(want)})`,
      );
    }
    return new OrtLlama(ort, session, config);
  }

  /** Frees the session. */
  async release(): Promise<void> {
    await this.session.release();
  }

  #int64(rows: number[][], what: string): OrtTypes.Tensor {
    const B = rows.length, S = rows[0].length;
    const data = new BigInt64Array(B * S);
    rows.forEach((r, b) => {
      if (r.length !== S) throw new Error(`onnxruntime: ${what} rows differ in length`);
      r.forEach((v, t) => data[b * S + t] = BigInt(v));
    });
    return new this.ort.Tensor("int64", data, [B, S]);
  }

  #emptyPast(B: number): Record<string, OrtTypes.Tensor> {
    const c = this.config, out: Record<string, OrtTypes.Tensor> = {};
    for (let l = 0; l < c.numLayers; l++) {
      for (const kind of ["key", "value"]) {
        out[`past_key_values.${l}.${kind}`] = new this.ort.Tensor(
          "float32",
          new Float32Array(0),
          [B, c.numKvHeads, 0, c.headDim],
        );
      }
    }
    return out;
  }

  #requireCausal(what: string): void {
    if (this.config.architecture !== "LlamaForCausalLM") {
      throw new Error(`${what} needs a LlamaForCausalLM, this is ${this.config.architecture}`);
    }
  }

  /** Logits [B, S, vocab] of B sequences of equal length (positions 0..S-1, no past). */
  async logits(seqs: number[][]): Promise<Float32Array> {
    this.#requireCausal("logits");
    const B = seqs.length, S = seqs[0].length;
    const out = await this.session.run({
      input_ids: this.#int64(seqs, "input_ids"),
      attention_mask: this.#int64(seqs.map((s) => s.map(() => 1)), "attention_mask"),
      position_ids: this.#int64(seqs.map((s) => s.map((_, t) => t)), "position_ids"),
      ...this.#emptyPast(B),
    });
    const logits = out.logits;
    const dims = logits.dims;
    if (dims.length !== 3 || dims[0] !== B || dims[1] !== S || dims[2] !== this.config.vocabSize) {
      throw new Error(`onnxruntime: logits have dims ${JSON.stringify(dims)}`);
    }
    return logits.data as Float32Array;
  }

  /**
   * Greedy generation as HF's generate does it: prompts left-padded to the longest (mask 0,
   * positions counted over real tokens), one run over the prompts, then one run per new token
   * with the previous run's `present.*` fed back as `past_key_values.*`. A sequence stops after a
   * stop id; the batch stops when every sequence has, or after `maxNewTokens`.
   */
  async greedy(
    prompts: number[][],
    opts: { maxNewTokens: number; stopIds: number[] },
  ): Promise<OrtGreedyResult> {
    this.#requireCausal("greedy");
    const c = this.config, V = c.vocabSize, B = prompts.length;
    const Pmax = Math.max(...prompts.map((p) => p.length));
    const padId = c.padTokenId ?? 0;
    const ids = prompts.map((p) => [...Array(Pmax - p.length).fill(padId), ...p]);
    const mask = prompts.map((p) => [...Array(Pmax - p.length).fill(0), ...p.map(() => 1)]);
    // HF: position_ids = cumsum(mask) - 1, with 1 at padding.
    const positions = prompts.map((p) => [
      ...Array(Pmax - p.length).fill(1),
      ...p.map((_, t) => t),
    ]);
    const nextPos = prompts.map((p) => p.length);
    const tokens: number[][] = prompts.map(() => []);
    const stopped = prompts.map(() => false);
    const stop = new Set(opts.stopIds);

    const pick = (logits: OrtTypes.Tensor): number[] => {
      const S = logits.dims[1] as number, data = logits.data as Float32Array;
      return prompts.map((_, b) => argmaxRow(data, (b * S + S - 1) * V, V));
    };
    const accept = (next: number[]) => {
      next.forEach((t, b) => {
        if (stopped[b]) return;
        tokens[b].push(t);
        if (stop.has(t)) stopped[b] = true;
      });
    };

    const t0 = performance.now();
    let out = await this.session.run({
      input_ids: this.#int64(ids, "input_ids"),
      attention_mask: this.#int64(mask, "attention_mask"),
      position_ids: this.#int64(positions, "position_ids"),
      ...this.#emptyPast(B),
    });
    let next = pick(out.logits);
    accept(next);
    const t1 = performance.now();
    let steps = 0;
    for (let k = 1; k < opts.maxNewTokens && stopped.some((s) => !s); k++) {
      mask.forEach((m) => m.push(1));
      const feeds: Record<string, OrtTypes.Tensor> = {
        input_ids: this.#int64(next.map((t) => [t]), "input_ids"),
        attention_mask: this.#int64(mask, "attention_mask"),
        position_ids: this.#int64(nextPos.map((p) => [p]), "position_ids"),
      };
      for (let l = 0; l < c.numLayers; l++) {
        feeds[`past_key_values.${l}.key`] = out[`present.${l}.key`];
        feeds[`past_key_values.${l}.value`] = out[`present.${l}.value`];
      }
      const prev = out;
      out = await this.session.run(feeds);
      for (const t of Object.values(prev)) t.dispose();
      next = pick(out.logits);
      accept(next);
      nextPos.forEach((_, b) => nextPos[b]++);
      steps++;
    }
    const t2 = performance.now();
    for (const t of Object.values(out)) t.dispose();
    return {
      tokens,
      stopped,
      prefillSeconds: (t1 - t0) / 1000,
      decodeSeconds: (t2 - t1) / 1000,
      decodeSteps: steps,
    };
  }

  /**
   * Reward-model scores [numLabels] per sequence: the sequences right-padded with the config's
   * pad id (0 when it has none, then one sequence per run) and scored in one run; the graph
   * pools each at its last non-padding token, as HF does.
   */
  async scores(seqs: number[][]): Promise<Float32Array[]> {
    const c = this.config;
    if (c.architecture !== "LlamaForSequenceClassification") {
      throw new Error(`scores needs a LlamaForSequenceClassification, this is ${c.architecture}`);
    }
    if (c.padTokenId === null) {
      const out: Float32Array[] = [];
      for (const s of seqs) out.push(...(await this.#scoreBatch([s], 0)));
      return out;
    }
    return await this.#scoreBatch(seqs, c.padTokenId);
  }

  async #scoreBatch(seqs: number[][], padId: number): Promise<Float32Array[]> {
    const S = Math.max(...seqs.map((s) => s.length)), N = this.config.numLabels;
    const ids = seqs.map((s) => [...s, ...Array(S - s.length).fill(padId)]);
    const mask = seqs.map((s) => [...s.map(() => 1), ...Array(S - s.length).fill(0)]);
    const out = await this.session.run({
      input_ids: this.#int64(ids, "input_ids"),
      attention_mask: this.#int64(mask, "attention_mask"),
    });
    const data = out.logits.data as Float32Array;
    return seqs.map((_, b) => data.slice(b * N, (b + 1) * N));
  }
}
