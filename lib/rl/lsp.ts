/**
 * One iteration of Language Self-Play (LSP.md, Algorithm 1), and of the GRPO data baseline that
 * shares its machinery:
 *
 * 1. queries: the challenger samples N queries from the (same) chat-templated challenger prompt,
 *    or, for GRPO, N queries are given (read from a dataset);
 * 2. the solver samples G answers per query (the query as an ordinary user turn);
 * 3. task rewards R through the {@link TaskReward} interface, and for LSP the quality
 *    self-reward R_Q from the frozen reference model acting as judge;
 * 4. advantages by {@link lspAdvantages};
 * 5. the losses L_sol + alpha_ch L_ch (GRPO: L_sol only) with beta-KL against the reference
 *    (its log-probs from its own forward over the same sequences), and ONE optimizer step:
 *    every sequence of the iteration goes through the policy's forward/backward in passes of
 *    at most `rowsPerPass` rows (grouped by length) whose gradients are summed, then AdamW
 *    steps once.
 *
 * The loss is evaluated at the log-probs recorded during generation; the training forward's
 * log-probs are compared with them bit for bit and mismatches are counted in the metrics.
 *
 * Random streams: generation is keyed by (seed, stream, row, position) with stream
 * 4*iteration + {0 challenger, 1 solver, 2 judge} and row = the sequence's index, so every
 * sample depends only on the seed, the iteration and its place, never on batching.
 *
 * @module
 */
import { uploadBuffer } from "../../gpu/buffers.ts";
import { Recorder } from "../../gpu/recorder.ts";
import { ForwardPass } from "../model/forward.ts";
import { generate } from "../model/generate.ts";
import type { LlamaModel } from "../model/llama.ts";
import type { ChatTokenizer } from "../model/tokenizer.ts";
import { type RewardItem, scoreChecked, type TaskReward } from "../rewards/reward.ts";
import type { AdamW, StepReport } from "../train/optimizer.ts";
import { type AdvantageNormalization, lspAdvantages, std } from "./advantages.ts";
import {
  countLogprobMismatches,
  type LspLossOptions,
  lspMicroLoss,
  packRollouts,
  type RlMicroBatch,
  roleNormalizers,
  type RoleTally,
  type RolloutSequence,
} from "./lsp_loss.ts";
import { challengerConversation, solverConversation } from "./roles.ts";
import type { SelfRewardJudge, SelfRewardResult } from "./self_reward.ts";

/** Sampling settings of one role. */
export interface SamplingOptions {
  maxNewTokens: number;
  temperature: number;
  topP: number;
}

/** Everything one iteration needs to know, resolved from the manifest. */
export interface LspIterationConfig extends LspLossOptions {
  /** N: queries per iteration. */
  queries: number;
  /** G: solver answers per query. */
  answersPerQuery: number;
  /** The filled challenger prompt (LSP); null for GRPO. */
  challengerPrompt: string | null;
  challenger: SamplingOptions;
  solver: SamplingOptions;
  advantageNorm: AdvantageNormalization;
  /**
   * Multiplies R_Q before it is added to R (the paper adds them unscaled: 1; with R in 0..1 and
   * R_Q in 0..7 the judge then dominates both roles' advantages).
   */
  selfRewardWeight: number;
  /** Sequences per forward/backward pass (a memory knob: gradients are summed exactly). */
  rowsPerPass: number;
  /** Sequences per generate() call. */
  generationBatch: number;
  /** Per-layer activation recomputation in the backward. */
  recompute: boolean;
}

/** The models and helpers of a run. */
export interface LspActors {
  policy: LlamaModel;
  /** The frozen initial model: KL reference and self-reward judge. */
  reference: LlamaModel;
  tokenizer: ChatTokenizer;
  optimizer: AdamW;
  taskReward: TaskReward;
  /** The self-reward judge (LSP), or null (LSP-Zero, GRPO). */
  judge: SelfRewardJudge | null;
}

/** Seconds spent in each phase of an iteration. */
export interface IterationTimes {
  challengerGeneration: number;
  solverGeneration: number;
  rewards: number;
  selfReward: number;
  training: number;
}

/** What one iteration produced: metrics (deterministic), timings and the samples. */
export interface IterationResult {
  metrics: Record<string, unknown>;
  seconds: IterationTimes;
  /** Tokens sampled (challenger + solver + judge) and tokens through the training forward. */
  generatedTokens: number;
  trainedTokens: number;
  samples: QuerySample[];
}

/** One query of an iteration with its answers, for samples.jsonl. */
export interface QuerySample {
  query: string;
  queryValue: number;
  challengerAdvantage: number | null;
  answers: { answer: string; reward: number; selfReward: number | null; judge: string | null }[];
}

interface Sampled {
  prompt: number[];
  tokens: number[];
  logprobs: number[];
  stopped: boolean;
  text: string;
}

const mean = (xs: number[]): number => xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
const stats = (xs: number[]) => ({ mean: mean(xs), std: xs.length ? std(xs) : 0 });

/** Samples one completion per prompt (row id = index) in batches of `batch`. */
async function sample(
  model: LlamaModel,
  tok: ChatTokenizer,
  prompts: number[][],
  opts: SamplingOptions,
  seed: number,
  stream: number,
  batch: number,
): Promise<Sampled[]> {
  const out: Sampled[] = [];
  const limit = model.config.maxPositionEmbeddings;
  prompts.forEach((p, i) => {
    if (p.length + opts.maxNewTokens > limit) {
      throw new Error(
        `prompt ${i} has ${p.length} tokens; with maxNewTokens ${opts.maxNewTokens} that ` +
          `exceeds the model's ${limit} positions`,
      );
    }
  });
  for (let i0 = 0; i0 < prompts.length; i0 += batch) {
    const chunk = prompts.slice(i0, i0 + batch);
    const r = await generate(model, chunk, {
      maxNewTokens: opts.maxNewTokens,
      temperature: opts.temperature,
      topP: opts.topP,
      seed,
      stream,
      stopIds: tok.stopIds,
      rowIds: chunk.map((_, k) => i0 + k),
    });
    chunk.forEach((p, k) => {
      const tokens = r.tokens[k];
      const body = r.stopped[k] ? tokens.slice(0, -1) : tokens;
      out.push({
        prompt: p,
        tokens,
        logprobs: r.logprobs[k],
        stopped: r.stopped[k],
        text: tok.decode(body, { skipSpecialTokens: true }),
      });
    });
  }
  return out;
}

/**
 * One optimizer step over micro-batches of different padded lengths: per micro-batch a forward
 * (one readback of the log-probs), the loss on the host, and the backward accumulating into the
 * optimizer's gradients; AdamW runs with the last backward. The same sequence of submissions
 * as the training library's trainStep, which takes a single (B, S) pass: here each micro-batch
 * gets a pass of its own shape (freed after its backward), so short solver rows are not padded
 * to the challenger's long prompt.
 */
export async function accumulateAndStep(
  policy: LlamaModel,
  optimizer: AdamW,
  micro: RlMicroBatch[],
  lr: number,
  recompute: boolean,
  lossOf: (logp: Float32Array, mb: RlMicroBatch) => { loss: number; dlogp: Float32Array },
): Promise<{ loss: number } & StepReport> {
  const gpu = policy.gpu;
  let loss = 0;
  let report: Promise<StepReport> | null = null;
  for (let k = 0; k < micro.length; k++) {
    const mb = micro[k];
    const pass = new ForwardPass(policy, mb.batch, mb.seqLen, {
      recompute,
    });
    try {
      const fwd = new Recorder(gpu);
      const out = pass.forwardLogprobs(fwd, mb.tokens, mb.targets);
      const read = fwd.read(out.logp, 0, mb.batch * mb.seqLen * 4);
      await fwd.submit();
      const l = lossOf(new Float32Array(await read), mb);
      loss += l.loss;
      const bwd = new Recorder(gpu);
      if (k === 0) optimizer.zeroGrads(bwd);
      const dlogp = uploadBuffer(gpu, l.dlogp, "rl.dlogp");
      pass.backward(bwd, dlogp, optimizer.grads);
      if (k === micro.length - 1) report = optimizer.recordStep(bwd, lr);
      await bwd.submit();
      dlogp.destroy();
    } finally {
      pass.destroy();
    }
  }
  if (!report) throw new Error("accumulateAndStep: no micro-batches");
  return { loss, ...(await report) };
}

/**
 * Runs one iteration at learning rate `lr`. `givenQueries` (GRPO) replaces the challenger and
 * must hold exactly N queries; LSP passes null.
 */
export async function lspIteration(
  actors: LspActors,
  cfg: LspIterationConfig,
  iteration: number,
  seed: number,
  lr: number,
  givenQueries: string[] | null,
): Promise<IterationResult> {
  const { policy, reference, tokenizer: tok, optimizer } = actors;
  const N = cfg.queries, G = cfg.answersPerQuery;
  const selfPlay = givenQueries === null;
  if (selfPlay && cfg.challengerPrompt === null) {
    throw new Error("lspIteration: no challenger prompt and no given queries");
  }
  if (givenQueries && givenQueries.length !== N) {
    throw new Error(`lspIteration: ${givenQueries.length} given queries, want ${N}`);
  }
  const seconds: IterationTimes = {
    challengerGeneration: 0,
    solverGeneration: 0,
    rewards: 0,
    selfReward: 0,
    training: 0,
  };
  const clock = () => performance.now() / 1000;
  const stream = (role: number) => 4 * iteration + role;

  // 1. Queries.
  let t = clock();
  let challengerSamples: Sampled[] = [];
  let queries: string[];
  if (selfPlay) {
    const prompt = tok.encodeChat(challengerConversation(cfg.challengerPrompt!), {
      addGenerationPrompt: true,
    });
    challengerSamples = await sample(
      policy,
      tok,
      Array.from({ length: N }, () => prompt),
      cfg.challenger,
      seed,
      stream(0),
      cfg.generationBatch,
    );
    queries = challengerSamples.map((s) => s.text);
  } else {
    queries = givenQueries!;
  }
  seconds.challengerGeneration = clock() - t;

  // 2. Answers: G per query, row i*G + j.
  t = clock();
  const solverPrompts = queries.flatMap((q) => {
    const p = tok.encodeChat(solverConversation(q), { addGenerationPrompt: true });
    return Array.from({ length: G }, () => p);
  });
  const answers = await sample(
    policy,
    tok,
    solverPrompts,
    cfg.solver,
    seed,
    stream(1),
    cfg.generationBatch,
  );
  seconds.solverGeneration = clock() - t;

  // 3. Rewards (task reward, then the self-reward judge).
  t = clock();
  const items: RewardItem[] = answers.map((a, k) => ({
    query: queries[Math.floor(k / G)],
    answer: a.text,
  }));
  const flatR = await scoreChecked(actors.taskReward, items);
  seconds.rewards = clock() - t;
  t = clock();
  let judged: SelfRewardResult | null = null;
  if (actors.judge) judged = await actors.judge.score(items, seed, stream(2));
  seconds.selfReward = clock() - t;
  const group = (flat: number[]) =>
    Array.from({ length: N }, (_, i) => flat.slice(i * G, (i + 1) * G));
  const R = group(flatR);
  const RQ = judged ? group(judged.scores) : null;
  const w = cfg.selfRewardWeight;
  const weightedRQ = RQ ? RQ.map((row) => row.map((x) => w * x)) : null;

  // 4. Advantages.
  const adv = lspAdvantages(R, weightedRQ, cfg.advantageNorm);

  // 5. Losses and one optimizer step.
  t = clock();
  const seqs: RolloutSequence[] = [];
  if (selfPlay) {
    challengerSamples.forEach((s, i) =>
      seqs.push({
        role: "challenger",
        prompt: s.prompt,
        completion: s.tokens,
        logprobs: s.logprobs,
        advantage: adv.challenger[i],
      })
    );
  }
  answers.forEach((a, k) =>
    seqs.push({
      role: "solver",
      prompt: a.prompt,
      completion: a.tokens,
      logprobs: a.logprobs,
      advantage: adv.solver[Math.floor(k / G)][k % G],
    })
  );
  const micro = packRollouts(seqs, cfg.rowsPerPass, tok.padId);
  const norm = roleNormalizers(seqs, cfg.aggregation);
  for (const mb of micro) {
    const refPass = new ForwardPass(reference, mb.batch, mb.seqLen, { forwardOnly: true });
    try {
      const rec = new Recorder(reference.gpu);
      const out = refPass.forwardLogprobs(rec, mb.tokens, mb.targets);
      const read = rec.read(out.logp, 0, mb.batch * mb.seqLen * 4);
      await rec.submit();
      mb.refLogp = new Float32Array(await read);
    } finally {
      refPass.destroy();
    }
  }
  const tallies: { solver: RoleTally; challenger: RoleTally }[] = [];
  let mismatches = 0, compared = 0, maxAbsDiff = 0;
  const step = await accumulateAndStep(policy, optimizer, micro, lr, cfg.recompute, (logp, mb) => {
    const m = countLogprobMismatches(mb, logp);
    mismatches += m.mismatches;
    compared += m.compared;
    maxAbsDiff = Math.max(maxAbsDiff, m.maxAbsDiff);
    const l = lspMicroLoss(mb, mb.genLogp, norm, cfg);
    tallies.push({ solver: l.solver, challenger: l.challenger });
    return l;
  });
  seconds.training = clock() - t;

  // Metrics.
  const sum = (role: "solver" | "challenger", f: (x: RoleTally) => number) =>
    tallies.reduce((a, x) => a + f(x[role]), 0);
  const klOf = (role: "solver" | "challenger") => {
    const n = sum(role, (x) => x.tokens);
    return n ? sum(role, (x) => x.klSum) / n : 0;
  };
  const nll = (ss: Sampled[]) => {
    const n = ss.reduce((a, s) => a + s.logprobs.length, 0);
    return n ? -ss.reduce((a, s) => a + s.logprobs.reduce((x, y) => x + y, 0), 0) / n : 0;
  };
  const metrics: Record<string, unknown> = {
    iter: iteration,
    solverReward: stats(flatR),
    queryValue: { ...stats(adv.queryValue), values: adv.queryValue },
    zeroVarianceShare: adv.zeroVarianceShare,
    loss: {
      total: step.loss,
      solver: sum("solver", (x) => x.loss),
      challenger: sum("challenger", (x) => x.loss),
    },
    kl: { solver: klOf("solver"), challenger: selfPlay ? klOf("challenger") : null },
    length: {
      query: selfPlay ? stats(challengerSamples.map((s) => s.tokens.length)) : null,
      answer: stats(answers.map((a) => a.tokens.length)),
      queryStoppedShare: selfPlay ? mean(challengerSamples.map((s) => s.stopped ? 1 : 0)) : null,
      answerStoppedShare: mean(answers.map((a) => a.stopped ? 1 : 0)),
    },
    // Mean -log pi of the sampled tokens: an unbiased estimate of the entropy when sampling
    // at temperature 1 with topP 1 (otherwise of the cross-entropy to the sampler).
    entropy: { solver: nll(answers), challenger: selfPlay ? nll(challengerSamples) : null },
    gradNorm: step.gradNorm,
    clipScale: step.clipScale,
    lr,
    logprobCheck: { compared, mismatches, maxAbsDiff },
  };
  if (selfPlay) {
    metrics.challengerAdvantage = { ...stats(adv.challenger), values: adv.challenger };
    metrics.challengerReward = stats(adv.challengerReward);
  }
  if (judged) {
    metrics.selfReward = {
      ...stats(judged.scores),
      malformed: judged.malformed,
      outOfRange: judged.outOfRange,
    };
  }
  const samples: QuerySample[] = queries.map((q, i) => ({
    query: q,
    queryValue: adv.queryValue[i],
    challengerAdvantage: selfPlay ? adv.challenger[i] : null,
    answers: Array.from({ length: G }, (_, j) => ({
      answer: answers[i * G + j].text,
      reward: R[i][j],
      selfReward: RQ ? RQ[i][j] : null,
      judge: judged ? judged.outputs[i * G + j] : null,
    })),
  }));
  const generatedTokens = challengerSamples.reduce((a, s) => a + s.tokens.length, 0) +
    answers.reduce((a, s) => a + s.tokens.length, 0);
  const trainedTokens = seqs.reduce((a, s) => a + s.prompt.length + s.completion.length, 0);
  return { metrics, seconds, generatedTokens, trainedTokens, samples };
}
