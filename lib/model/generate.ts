/**
 * Batched generation with a KV cache: prefill all prompts (of different lengths) at once, then
 * decode one token per live sequence per step.
 *
 * Sampled tokens stay on the GPU and are the next step's input; the host reads the sampled tokens
 * and their log-probs back only every `readbackEvery` steps (one submission per segment), checks
 * stop ids and max lengths, and drops finished sequences from the batch. Each token's log-prob is
 * tokenLogprobs on the sampled token (temperature 1), through the same layer code and the same
 * row-invariant kernels as {@link ForwardPass.forwardLogprobs}, so training sees the same bits.
 *
 * @module
 */
import { createBuffer, uploadBuffer } from "../../gpu/buffers.ts";
import { Recorder } from "../../gpu/recorder.ts";
import { embedTokens, linear } from "./linear.ts";
import { rmsnorm } from "../../gpu/rmsnorm.ts";
import { kvStore } from "../../gpu/attention.ts";
import { tokenLogprobs } from "../../gpu/logprobs.ts";
import { sample } from "../../gpu/sampling.ts";
import type { LlamaModel } from "./llama.ts";
import { allocLayerActs, recordLayerForward } from "./layer.ts";

/** Options of {@link generate}. */
export interface GenerateOptions {
  /** Most tokens generated per sequence (>= 1). */
  maxNewTokens: number;
  /** 0 = greedy; otherwise sampling from softmax(logits / temperature). */
  temperature: number;
  /** Nucleus mass in (0, 1]; 1 = no truncation. */
  topP: number;
  /** RNG seed and stream; the RNG is keyed by (seed, stream, row id, position of the new token). */
  seed: number;
  stream: number;
  /** A sequence stops after emitting any of these (the stop token is kept in its output). */
  stopIds: number[];
  /**
   * RNG row id of each prompt (default its index). Give a prompt the same id and it draws the
   * same tokens whatever batch it is in.
   */
  rowIds?: number[];
  /** Decode steps between readbacks (default 8). */
  readbackEvery?: number;
  /** Rows per prefill chunk (default 512; bounds the activation memory). */
  prefillChunkRows?: number;
}

/** Counters of one {@link generate} call. */
export interface GenerateStats {
  prefillTokens: number;
  /** Decode steps run (each feeds one token per live sequence). */
  decodeSteps: number;
  /** Tokens fed through decode steps, summed over sequences. */
  decodedTokens: number;
  /** Kernel dispatches per decode step, i.e. per decoded token of one sequence. */
  dispatchesPerToken: number;
  /** GPU round trips that read results back. */
  readbacks: number;
  /** Readbacks per sequence: mean over sequences of the readbacks it was live for. */
  readbacksPerSequence: number;
  /** Submissions made. */
  submits: number;
  /** Wall time of the first segment: the prefill plus up to readbackEvery-1 decode steps. */
  prefillMs: number;
  /** Wall time of the later segments. */
  decodeMs: number;
}

/** Result of {@link generate}: per prompt, the new tokens and their log-probabilities. */
export interface GenerateResult {
  tokens: number[][];
  logprobs: number[][];
  /** True when the sequence ended on a stop id (false: it hit maxNewTokens). */
  stopped: boolean[];
  stats: GenerateStats;
}

function checkInt(v: number, what: string, min: number): void {
  if (!Number.isInteger(v) || v < min) {
    throw new Error(`generate: ${what} must be an integer >= ${min}, got ${v}`);
  }
}

/** Generates continuations of `prompts` (token ids) with a KV cache; see the module doc. */
export async function generate(
  model: LlamaModel,
  prompts: number[][],
  opts: GenerateOptions,
): Promise<GenerateResult> {
  const gpu = model.gpu, c = model.config;
  const D = c.hiddenSize, V = c.vocabSize, G = c.numKvHeads, hd = c.headDim, L = c.numLayers;
  if (c.architecture !== "LlamaForCausalLM") {
    throw new Error(`generate needs a LlamaForCausalLM model, this is ${c.architecture}`);
  }
  const B = prompts.length;
  checkInt(B, "the number of prompts", 1);
  checkInt(opts.maxNewTokens, "maxNewTokens", 1);
  const K = opts.readbackEvery ?? 8;
  checkInt(K, "readbackEvery", 1);
  if (!(opts.temperature >= 0)) {
    throw new Error(`generate: temperature must be >= 0, got ${opts.temperature}`);
  }
  if (!(opts.topP > 0 && opts.topP <= 1)) {
    throw new Error(`generate: topP must be in (0, 1], got ${opts.topP}`);
  }
  prompts.forEach((p, b) => {
    if (p.length === 0) throw new Error(`generate: prompt ${b} is empty`);
    p.forEach((t, i) => {
      if (!Number.isInteger(t) || t < 0 || t >= V) {
        throw new Error(
          `generate: prompt ${b} token ${i} = ${t} is outside the vocabulary 0..${V - 1}`,
        );
      }
    });
  });
  const rowIds = opts.rowIds ?? prompts.map((_, b) => b);
  if (rowIds.length !== B) throw new Error(`generate: ${rowIds.length} rowIds for ${B} prompts`);
  rowIds.forEach((r) => checkInt(r, "a row id", 0));
  const lens = prompts.map((p) => p.length);
  const Smax = Math.max(...lens) + opts.maxNewTokens;
  const total = lens.reduce((a, b) => a + b, 0);
  const chunkRows = opts.prefillChunkRows ?? 512;
  checkInt(chunkRows, "prefillChunkRows", 1);
  const R = Math.max(B, Math.min(total, chunkRows));
  const stop = new Set(opts.stopIds);

  const owned: GPUBuffer[] = [];
  const buf = (bytes: number, label: string) => {
    const b = createBuffer(gpu, bytes, label);
    owned.push(b);
    return b;
  };
  const temp: GPUBuffer[] = [];
  const upload = (data: Uint32Array, label: string) => {
    const b = uploadBuffer(gpu, data, label);
    temp.push(b);
    return b;
  };
  const acts = allocLayerActs(gpu, model, R, "gen");
  owned.push(...Object.values(acts));
  const xa = buf(R * D * 4, "gen.xa"), xb = buf(R * D * 4, "gen.xb");
  const kc: GPUBuffer[] = [], vc: GPUBuffer[] = [];
  for (let l = 0; l < L; l++) {
    kc.push(buf(B * Smax * G * hd * 4, `gen.kc${l}`));
    vc.push(buf(B * Smax * G * hd * 4, `gen.vc${l}`));
  }
  const lastH = buf(B * D * 4, "gen.lastH");
  const xf = buf(B * D * 4, "gen.xf"), rstdF = buf(B * 4, "gen.rstdF");
  const logits = buf(B * V * 4, "gen.logits"), lse = buf(B * 4, "gen.lse");
  const logp = buf(B * 4, "gen.logp"), sampled = buf(B * 4, "gen.sampled");
  const normW = model.w("model.norm.weight");

  /** Runs all layers over M rows from xa; returns the buffer holding the output. */
  const layers = (rec: Recorder, M: number, seq: GPUBuffer, pos: GPUBuffer): GPUBuffer => {
    let x = xa, y = xb;
    for (let l = 0; l < L; l++) {
      recordLayerForward(
        rec,
        model,
        l,
        x,
        y,
        acts,
        M,
        seq,
        pos,
        { kc: kc[l], vc: vc[l], S: Smax },
        (r, k, v, m) => kvStore(r, k, v, kc[l], vc[l], seq, pos, m, G, hd, Smax),
      );
      [x, y] = [y, x];
    }
    return x;
  };
  /** Final norm, LM head, sampling and the sampled token's log-prob for n last rows. */
  const headStep = (
    rec: Recorder,
    xLast: GPUBuffer,
    n: number,
    rows: GPUBuffer,
    nextPos: GPUBuffer,
  ) => {
    rmsnorm(rec, xLast, normW, xf, rstdF, n, D, c.rmsNormEps);
    linear(rec, model, model.headName, xf, logits, n, D, V);
    sample(
      rec,
      logits,
      sampled,
      n,
      V,
      {
        temperature: opts.temperature,
        topP: opts.topP,
        seed: opts.seed,
        stream: opts.stream,
      },
      nextPos,
      rows,
    );
    tokenLogprobs(rec, logits, sampled, logp, lse, n, V);
  };

  const tokens: number[][] = prompts.map(() => []);
  const logprobs: number[][] = prompts.map(() => []);
  const stopped = prompts.map(() => false);
  const done = prompts.map(() => false);
  const liveReads = new Array(B).fill(0);
  const rec = new Recorder(gpu);
  let live = prompts.map((_, b) => b);
  let generated = 0; // tokens generated so far by every live sequence (they advance together)
  let readbacks = 0, decodeSteps = 0, decodedTokens = 0, decodeDispatches = 0;
  let prefillMs = 0, decodeMs = 0;
  let liveChanged = false;

  while (live.length > 0 && generated < opts.maxNewTokens) {
    const t0 = performance.now();
    const n = live.length;
    const k = Math.min(K, opts.maxNewTokens - generated);
    const segTokens = createBuffer(gpu, k * n * 4, "gen.segTokens");
    const segLogp = createBuffer(gpu, k * n * 4, "gen.segLogp");
    const seqBuf = upload(Uint32Array.from(live), "gen.seq");
    const rowBuf = upload(Uint32Array.from(live.map((b) => rowIds[b])), "gen.rows");
    let step = 0;
    if (generated === 0) {
      // Prefill: every prompt token, packed sequence after sequence, in chunks of R rows.
      const ids: number[] = [], seqs: number[] = [], poss: number[] = [];
      prompts.forEach((p, b) => p.forEach((t, i) => (ids.push(t), seqs.push(b), poss.push(i))));
      for (let r0 = 0; r0 < total; r0 += R) {
        const m = Math.min(R, total - r0);
        const tok = upload(Uint32Array.from(ids.slice(r0, r0 + m)), "gen.prefill.tokens");
        const sq = upload(Uint32Array.from(seqs.slice(r0, r0 + m)), "gen.prefill.seq");
        const ps = upload(Uint32Array.from(poss.slice(r0, r0 + m)), "gen.prefill.pos");
        embedTokens(rec, model, tok, xa, m);
        const out = layers(rec, m, sq, ps);
        // Keep the last prompt row of every sequence that ends in this chunk.
        let end = 0;
        for (let b = 0; b < B; b++) {
          end += lens[b];
          const r = end - 1;
          if (r >= r0 && r < r0 + m) rec.copy(out, (r - r0) * D * 4, lastH, b * D * 4, D * 4);
        }
      }
      headStep(rec, lastH, B, rowBuf, upload(Uint32Array.from(lens), "gen.nextPos"));
      rec.copy(sampled, 0, segTokens, 0, n * 4);
      rec.copy(logp, 0, segLogp, 0, n * 4);
      step = 1;
      prefillMs = -1; // measured after the first readback below
    } else if (liveChanged) {
      const last = Uint32Array.from(live.map((b) => tokens[b][tokens[b].length - 1]));
      rec.copy(upload(last, "gen.lastTokens"), 0, sampled, 0, n * 4);
    }
    const d0 = rec.dispatchCount;
    for (; step < k; step++) {
      const g = generated + step; // the token being fed is number g-1, at position len+g-1
      const pos = upload(Uint32Array.from(live.map((b) => lens[b] + g - 1)), "gen.pos");
      const nextPos = upload(Uint32Array.from(live.map((b) => lens[b] + g)), "gen.nextPos");
      embedTokens(rec, model, sampled, xa, n);
      const out = layers(rec, n, seqBuf, pos);
      headStep(rec, out, n, rowBuf, nextPos);
      rec.copy(sampled, 0, segTokens, step * n * 4, n * 4);
      rec.copy(logp, 0, segLogp, step * n * 4, n * 4);
      decodeSteps++;
      decodedTokens += n;
    }
    decodeDispatches += rec.dispatchCount - d0;
    const pt = rec.read(segTokens, 0, k * n * 4), pl = rec.read(segLogp, 0, k * n * 4);
    await rec.submit();
    const segT = new Uint32Array(await pt), segL = new Float32Array(await pl);
    readbacks++;
    const ms = performance.now() - t0;
    if (prefillMs === -1) prefillMs = ms;
    else decodeMs += ms;
    for (const b of live) liveReads[b]++;
    for (let j = 0; j < k; j++) {
      live.forEach((b, i) => {
        if (done[b]) return;
        const t = segT[j * n + i];
        tokens[b].push(t);
        logprobs[b].push(segL[j * n + i]);
        if (stop.has(t)) stopped[b] = done[b] = true;
        else if (tokens[b].length >= opts.maxNewTokens) done[b] = true;
      });
    }
    generated += k;
    const before = live.length;
    live = live.filter((b) => !done[b]);
    liveChanged = live.length !== before;
    for (const t of temp.splice(0)) t.destroy();
    segTokens.destroy();
    segLogp.destroy();
  }
  for (const b of owned) b.destroy();
  return {
    tokens,
    logprobs,
    stopped,
    stats: {
      prefillTokens: total,
      decodeSteps,
      decodedTokens,
      dispatchesPerToken: decodeSteps > 0 ? decodeDispatches / decodeSteps : 0,
      readbacks,
      readbacksPerSequence: liveReads.reduce((a, b) => a + b, 0) / B,
      submits: rec.submitCount,
      prefillMs,
      decodeMs,
    },
  };
}
