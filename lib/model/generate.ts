/**
 * Batched generation with a KV cache: prefill all prompts (of different lengths) at once, then
 * decode one token per live sequence per step.
 *
 * Sampled tokens stay on the GPU and are the next step's input; the host reads the sampled tokens
 * and their log-probs back only every `readbackEvery` steps (one submission per segment), checks
 * stop ids and max lengths, and drops finished sequences from the batch. Pipelined, the next
 * segment is recorded and submitted before the current one's tokens are known, on the guess that
 * no sequence stops: positions advance on the GPU, so it needs no upload, and what it computes
 * for a sequence that did stop is dropped (each row's arithmetic is independent of the others'). Each token's log-prob is
 * tokenLogprobs on the sampled token (temperature 1), through the same layer code and the same
 * row-invariant kernels as {@link ForwardPass.forwardLogprobs}, so training sees the same bits.
 *
 * @module
 */
import { createBuffer, uploadBuffer, writeBuffer } from "../../gpu/buffers.ts";
import { decodeStepEnd } from "../../gpu/decode_step.ts";
import { Recorder } from "../../gpu/recorder.ts";
import { embedTokens, linear } from "./linear.ts";
import { rmsnorm } from "../../gpu/rmsnorm.ts";
import { kvStore } from "../../gpu/attention.ts";
import { tokenLogprobs } from "../../gpu/logprobs.ts";
import { sample } from "../../gpu/sampling.ts";
import type { LlamaModel } from "./llama.ts";
import type { GpuInfo } from "../../gpu/device.ts";
import { allocLayerActs, type LayerActs, recordLayerForward } from "./layer.ts";
import { checkGenerationFits } from "./generation_limits.ts";

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
  /**
   * Record and submit the next segment while the GPU runs the current one (default: on GPUs,
   * off on CPU adapters; see {@link pipelinesByDefault}). The tokens and log-probs are the same
   * bits either way.
   */
  pipelined?: boolean;
}

/** Counters of one {@link generate} call. */
export interface GenerateStats {
  prefillTokens: number;
  /** Decode steps run (each feeds one token per live sequence). */
  decodeSteps: number;
  /** Tokens fed through decode steps, summed over sequences (discarded ones included). */
  decodedTokens: number;
  /**
   * Tokens a speculative (pipelined) segment computed for sequences that had finished in the
   * segment before it; they are dropped.
   */
  discardedTokens: number;
  /** Kernel dispatches per decode step, i.e. per decoded token of one sequence. */
  dispatchesPerToken: number;
  /** GPU round trips that read results back. */
  readbacks: number;
  /** Readbacks per sequence: mean over sequences of the readbacks it was live for. */
  readbacksPerSequence: number;
  /** Submissions made. */
  submits: number;
  /** Whether decode segments were pipelined. */
  pipelined: boolean;
  /**
   * Wall time until the first segment (the prefill plus up to readbackEvery-1 decode steps) was
   * read back.
   */
  prefillMs: number;
  /** Wall time after that. */
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

/** Checks the arguments of {@link generate}; returns the readback cadence and the RNG row ids. */
function checkArgs(
  model: LlamaModel,
  prompts: number[][],
  opts: GenerateOptions,
): { K: number; rowIds: number[]; chunkRows: number } {
  const c = model.config, V = c.vocabSize;
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
  // Positions and buffer sizes before any work (generation_limits.ts). Weights past one binding
  // are no limit: they are bound in windows of rows (gpu/window.ts).
  checkGenerationFits(
    c,
    model.gpu.device.limits.maxStorageBufferBindingSize,
    {
      promptLengths: prompts.map((p) => p.length),
      maxNewTokens: opts.maxNewTokens,
      prefillChunkRows: opts.prefillChunkRows,
    },
    "generate",
  );
  const rowIds = opts.rowIds ?? prompts.map((_, b) => b);
  if (rowIds.length !== B) throw new Error(`generate: ${rowIds.length} rowIds for ${B} prompts`);
  rowIds.forEach((r) => checkInt(r, "a row id", 0));
  const chunkRows = opts.prefillChunkRows ?? 512;
  checkInt(chunkRows, "prefillChunkRows", 1);
  return { K, rowIds, chunkRows };
}

/**
 * The GPU buffers of one generation: one layer's activations for R rows (prefill chunk or
 * decode batch), two residual buffers, the KV cache [B, Smax] per layer and the head's buffers
 * for B rows. {@link GenBuffers.destroy} frees them all.
 */
class GenBuffers {
  readonly acts: LayerActs;
  readonly xa: GPUBuffer;
  readonly xb: GPUBuffer;
  readonly kc: GPUBuffer[] = [];
  readonly vc: GPUBuffer[] = [];
  /** Each sequence's last prompt row after the layers [B, D] (the prefill's head input). */
  readonly lastH: GPUBuffer;
  readonly xf: GPUBuffer;
  readonly rstdF: GPUBuffer;
  readonly logits: GPUBuffer;
  readonly lse: GPUBuffer;
  readonly logp: GPUBuffer;
  readonly sampled: GPUBuffer;
  /** Live rows' sequence ids, RNG row ids, fed positions and new positions (u32 [B] each). */
  readonly seq: GPUBuffer;
  readonly rows: GPUBuffer;
  readonly pos: GPUBuffer;
  readonly nextPos: GPUBuffer;
  /** A segment's sampled tokens (u32) and their log-probs (f32), [K, live] each. */
  readonly segTokens: GPUBuffer;
  readonly segLogp: GPUBuffer;
  #owned: GPUBuffer[] = [];

  constructor(model: LlamaModel, B: number, R: number, K: number, readonly Smax: number) {
    const gpu = model.gpu, c = model.config;
    const D = c.hiddenSize, V = c.vocabSize, G = c.numKvHeads, hd = c.headDim;
    const buf = (bytes: number, label: string) => {
      const b = createBuffer(gpu, bytes, label);
      this.#owned.push(b);
      return b;
    };
    try {
      this.acts = allocLayerActs(gpu, model, R, "gen");
      this.#owned.push(...Object.values(this.acts));
      this.xa = buf(R * D * 4, "gen.xa");
      this.xb = buf(R * D * 4, "gen.xb");
      for (let l = 0; l < c.numLayers; l++) {
        this.kc.push(buf(B * Smax * G * hd * 4, `gen.kc${l}`));
        this.vc.push(buf(B * Smax * G * hd * 4, `gen.vc${l}`));
      }
      this.lastH = buf(B * D * 4, "gen.lastH");
      this.xf = buf(B * D * 4, "gen.xf");
      this.rstdF = buf(B * 4, "gen.rstdF");
      this.logits = buf(B * V * 4, "gen.logits");
      this.lse = buf(B * 4, "gen.lse");
      this.logp = buf(B * 4, "gen.logp");
      this.sampled = buf(B * 4, "gen.sampled");
      this.seq = buf(B * 4, "gen.seq");
      this.rows = buf(B * 4, "gen.rows");
      this.pos = buf(B * 4, "gen.pos");
      this.nextPos = buf(B * 4, "gen.nextPos");
      this.segTokens = buf(K * B * 4, "gen.segTokens");
      this.segLogp = buf(K * B * 4, "gen.segLogp");
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  destroy(): void {
    for (const b of this.#owned) b.destroy();
    this.#owned = [];
  }
}

/** Records the decoder layers over M rows from `bufs.xa`; returns the buffer holding the output. */
function recordLayers(
  rec: Recorder,
  model: LlamaModel,
  bufs: GenBuffers,
  M: number,
  seq: GPUBuffer,
  pos: GPUBuffer,
): GPUBuffer {
  const c = model.config, G = c.numKvHeads, hd = c.headDim, Smax = bufs.Smax;
  let x = bufs.xa, y = bufs.xb;
  for (let l = 0; l < c.numLayers; l++) {
    const kc = bufs.kc[l], vc = bufs.vc[l];
    recordLayerForward(
      rec,
      model,
      l,
      x,
      y,
      bufs.acts,
      M,
      seq,
      pos,
      { kc, vc, S: Smax },
      (r, k, v, m) => kvStore(r, k, v, kc, vc, seq, pos, m, G, hd, Smax),
    );
    [x, y] = [y, x];
  }
  return x;
}

/**
 * Records the final norm, the LM head, sampling into `bufs.sampled` and the sampled token's
 * log-prob into `bufs.logp` for n rows of `xLast` (RNG rows `rows`, new positions `nextPos`).
 */
function recordHead(
  rec: Recorder,
  model: LlamaModel,
  bufs: GenBuffers,
  opts: GenerateOptions,
  xLast: GPUBuffer,
  n: number,
  rows: GPUBuffer,
  nextPos: GPUBuffer,
): void {
  const c = model.config, D = c.hiddenSize, V = c.vocabSize;
  rmsnorm(rec, xLast, model.w("model.norm.weight"), bufs.xf, bufs.rstdF, n, D, c.rmsNormEps);
  linear(rec, model, model.headName, bufs.xf, bufs.logits, n, D, V);
  const sampling = {
    temperature: opts.temperature,
    topP: opts.topP,
    seed: opts.seed,
    stream: opts.stream,
  };
  sample(rec, bufs.logits, bufs.sampled, n, V, sampling, nextPos, rows);
  tokenLogprobs(rec, bufs.logits, bufs.sampled, bufs.logp, bufs.lse, n, V);
}

/**
 * Records the prefill: every prompt token, packed sequence after sequence, through the layers
 * in chunks of R rows, keeping each sequence's last prompt row in `bufs.lastH`; then the head
 * samples every sequence's first new token (RNG positions from `bufs.nextPos`).
 */
function recordPrefill(
  rec: Recorder,
  model: LlamaModel,
  bufs: GenBuffers,
  opts: GenerateOptions,
  prompts: number[][],
  R: number,
  upload: (data: Uint32Array, label: string) => GPUBuffer,
): void {
  const D = model.config.hiddenSize, B = prompts.length;
  const ids: number[] = [], seqs: number[] = [], poss: number[] = [];
  prompts.forEach((p, b) => p.forEach((t, i) => (ids.push(t), seqs.push(b), poss.push(i))));
  const total = ids.length;
  for (let r0 = 0; r0 < total; r0 += R) {
    const m = Math.min(R, total - r0);
    const tok = upload(Uint32Array.from(ids.slice(r0, r0 + m)), "gen.prefill.tokens");
    const sq = upload(Uint32Array.from(seqs.slice(r0, r0 + m)), "gen.prefill.seq");
    const ps = upload(Uint32Array.from(poss.slice(r0, r0 + m)), "gen.prefill.pos");
    embedTokens(rec, model, tok, bufs.xa, m);
    const out = recordLayers(rec, model, bufs, m, sq, ps);
    // Keep the last prompt row of every sequence that ends in this chunk.
    let end = 0;
    for (let b = 0; b < B; b++) {
      end += prompts[b].length;
      const r = end - 1;
      if (r >= r0 && r < r0 + m) rec.copy(out, (r - r0) * D * 4, bufs.lastH, b * D * 4, D * 4);
    }
  }
  recordHead(rec, model, bufs, opts, bufs.lastH, B, bufs.rows, bufs.nextPos);
}

/**
 * Records one decode step for the n live rows: the tokens in `bufs.sampled` (at `bufs.pos`)
 * through the layers and the head, then the step's tokens and log-probs into row `step` of the
 * segment's outputs and the positions one further (all on the GPU: nothing is uploaded).
 */
function recordDecodeStep(
  rec: Recorder,
  model: LlamaModel,
  bufs: GenBuffers,
  opts: GenerateOptions,
  n: number,
): GPUBuffer {
  embedTokens(rec, model, bufs.sampled, bufs.xa, n);
  const out = recordLayers(rec, model, bufs, n, bufs.seq, bufs.pos);
  recordHead(rec, model, bufs, opts, out, n, bufs.rows, bufs.nextPos);
  return out;
}

/** Host-side state of a generation: outputs so far and which sequences are still live. */
class GenState {
  readonly tokens: number[][];
  readonly logprobs: number[][];
  readonly stopped: boolean[];
  readonly done: boolean[];
  /** Readbacks each sequence was live for. */
  readonly liveReads: number[];
  live: number[];
  /** Steps absorbed so far: every live sequence has generated this many tokens. */
  generated = 0;
  /** Tokens a speculative segment computed for sequences that had already finished. */
  discarded = 0;
  readonly #stop: Set<number>;

  constructor(B: number, stopIds: number[], readonly maxNewTokens: number) {
    this.tokens = Array.from({ length: B }, () => []);
    this.logprobs = Array.from({ length: B }, () => []);
    this.stopped = new Array(B).fill(false);
    this.done = new Array(B).fill(false);
    this.liveReads = new Array(B).fill(0);
    this.live = Array.from({ length: B }, (_, b) => b);
    this.#stop = new Set(stopIds);
  }

  /**
   * Takes in one segment's k steps of tokens and log-probs ([k, rows.length] each, for the
   * sequences `rows` it ran) and drops the sequences that are done. Rows that finished before
   * this segment (it was recorded before their end was known) are skipped.
   */
  absorb(k: number, rows: number[], segT: Uint32Array, segL: Float32Array): void {
    const n = rows.length;
    for (const b of rows) {
      if (this.done[b]) this.discarded += k;
      else this.liveReads[b]++;
    }
    for (let j = 0; j < k; j++) {
      rows.forEach((b, i) => {
        if (this.done[b]) return;
        const t = segT[j * n + i];
        this.tokens[b].push(t);
        this.logprobs[b].push(segL[j * n + i]);
        if (this.#stop.has(t)) this.stopped[b] = this.done[b] = true;
        else if (this.tokens[b].length >= this.maxNewTokens) this.done[b] = true;
      });
    }
    this.generated += k;
    this.live = this.live.filter((b) => !this.done[b]);
  }
}

/** One submitted segment: up to K steps for a fixed set of rows, awaiting its readback. */
interface Segment {
  /** The sequences it ran, in GPU row order. */
  rows: number[];
  k: number;
  first: boolean;
  /** Its sampled tokens and their log-probs, [k, rows.length] each, once the GPU is done. */
  result: Promise<[Uint32Array, Float32Array]>;
  /** Buffers only this segment uses (freed once it is done). */
  temp: GPUBuffer[];
}

const sameRows = (a: number[], b: number[]) =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * Whether decode segments are pipelined by default: SELFPLAY_PIPELINE=on|off, else on GPUs, where
 * encoding the next segment while the GPU runs the current one hides the host's share, and not on
 * CPU adapters, where host and "GPU" share the same cores and a speculative segment's dropped
 * rows cost real time.
 */
export function pipelinesByDefault(model: LlamaModel): boolean {
  return choosePipelining(Deno.env.get("SELFPLAY_PIPELINE"), model.gpu.info);
}

/** {@link pipelinesByDefault} for a SELFPLAY_PIPELINE value (or none) and an adapter. */
export function choosePipelining(
  env: string | undefined,
  info: Pick<GpuInfo, "isFallbackAdapter" | "kernels">,
): boolean {
  if (env === "on" || env === "off") return env === "on";
  if (env) throw new Error(`SELFPLAY_PIPELINE=${env}: expected "on" or "off"`);
  return !info.isFallbackAdapter && info.kernels !== "serial";
}

/** Generates continuations of `prompts` (token ids) with a KV cache; see the module doc. */
export async function generate(
  model: LlamaModel,
  prompts: number[][],
  opts: GenerateOptions,
): Promise<GenerateResult> {
  const { K, rowIds, chunkRows } = checkArgs(model, prompts, opts);
  const pipelined = opts.pipelined ?? pipelinesByDefault(model);
  const gpu = model.gpu, B = prompts.length;
  const lens = prompts.map((p) => p.length);
  const Smax = Math.max(...lens) + opts.maxNewTokens;
  const total = lens.reduce((a, b) => a + b, 0);
  const R = Math.max(B, Math.min(total, chunkRows));
  const state = new GenState(B, opts.stopIds, opts.maxNewTokens);
  const rec = new Recorder(gpu);
  let readbacks = 0, decodeSteps = 0, decodedTokens = 0, decodeDispatches = 0;
  const t0 = performance.now();
  let prefillMs = 0;
  const bufs = new GenBuffers(model, B, R, K, Smax);
  const write = (buf: GPUBuffer, data: Uint32Array) => writeBuffer(gpu, buf, data);
  /** The rows the GPU's per-row buffers (seq, rows, sampled, pos) are laid out for. */
  let gpuRows: number[] = [];

  /**
   * Records and submits the next segment: k steps from `generated` tokens on for `rows`. With
   * `speculative`, the previous segment is still running and the GPU's per-row buffers are
   * already right (same rows, positions advanced on the GPU): nothing is written.
   */
  const launch = (rows: number[], generated: number, speculative: boolean): Segment => {
    const n = rows.length, first = generated === 0;
    const k = Math.min(K, opts.maxNewTokens - generated);
    if (!speculative) {
      // The queue applies these writes after the previous submission, before this one.
      if (first || !sameRows(rows, gpuRows)) {
        write(bufs.seq, Uint32Array.from(rows));
        write(bufs.rows, Uint32Array.from(rows, (b) => rowIds[b]));
        if (!first) write(bufs.sampled, Uint32Array.from(rows, (b) => state.tokens[b].at(-1)!));
      }
      // The token fed next is number generated-1, at position len+generated-1 (the prefill's
      // head samples at position len, which nextPos holds at first).
      write(bufs.pos, Uint32Array.from(rows, (b) => lens[b] + generated - 1));
      write(bufs.nextPos, Uint32Array.from(rows, (b) => lens[b] + generated));
    }
    gpuRows = rows;
    const temp: GPUBuffer[] = [];
    const upload = (data: Uint32Array, label: string) => {
      const b = uploadBuffer(gpu, data, label);
      temp.push(b);
      return b;
    };
    const end = (step: number) =>
      decodeStepEnd(
        rec,
        bufs.sampled,
        bufs.logp,
        bufs.segTokens,
        bufs.segLogp,
        bufs.pos,
        bufs.nextPos,
        n,
        step * n,
      );
    let step = 0;
    if (first) {
      recordPrefill(rec, model, bufs, opts, prompts, R, upload);
      end(step++);
    }
    const d0 = rec.dispatchCount;
    for (; step < k; step++) {
      recordDecodeStep(rec, model, bufs, opts, n);
      end(step);
      decodeSteps++;
      decodedTokens += n;
    }
    decodeDispatches += rec.dispatchCount - d0;
    // The copies into the readbacks' staging buffers are part of this submission, so the next
    // segment may overwrite segTokens/segLogp.
    const pt = rec.read(bufs.segTokens, 0, k * n * 4);
    const pl = rec.read(bufs.segLogp, 0, k * n * 4);
    const submitted = rec.submit();
    const result = submitted.then(async (): Promise<[Uint32Array, Float32Array]> => [
      new Uint32Array(await pt),
      new Float32Array(await pl),
    ]);
    result.catch(() => {}); // awaited below; a speculative one may be abandoned on an error
    return { rows, k, first, result, temp };
  };

  const inFlight: Segment[] = [];
  try {
    for (;;) {
      // Submit the next segment if there is one to run: right away when nothing is running,
      // speculatively (before the running one's tokens are known) when pipelined and the
      // running segment has the live rows as they stand (no sequence dropped since it started).
      const running = inFlight.at(-1);
      const planned = state.generated + inFlight.reduce((a, s) => a + s.k, 0);
      const more = state.live.length > 0 && planned < opts.maxNewTokens;
      if (
        more &&
        (!running || (pipelined && inFlight.length < 2 && sameRows(running.rows, state.live)))
      ) {
        inFlight.push(launch(state.live, planned, running !== undefined));
        if (!running) continue; // nothing to wait for yet: maybe pipeline another one
      }
      const seg = inFlight.shift();
      if (!seg) break;
      try {
        const [segT, segL] = await seg.result;
        readbacks++;
        state.absorb(seg.k, seg.rows, segT, segL);
      } finally {
        for (const t of seg.temp) t.destroy();
      }
      if (seg.first) prefillMs = performance.now() - t0;
    }
  } finally {
    // After an error, let what is still running finish before its buffers go.
    await Promise.allSettled(inFlight.map((s) => s.result));
    for (const s of inFlight) for (const t of s.temp) t.destroy();
    bufs.destroy();
  }
  return {
    tokens: state.tokens,
    logprobs: state.logprobs,
    stopped: state.stopped,
    stats: {
      prefillTokens: total,
      decodeSteps,
      decodedTokens,
      discardedTokens: state.discarded,
      dispatchesPerToken: decodeSteps > 0 ? decodeDispatches / decodeSteps : 0,
      readbacks,
      readbacksPerSequence: state.liveReads.reduce((a, b) => a + b, 0) / B,
      submits: rec.submitCount,
      pipelined,
      prefillMs,
      decodeMs: performance.now() - t0 - prefillMs,
    },
  };
}
