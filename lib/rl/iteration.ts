/**
 * One iteration of Language Self-Play (LSP.md, Algorithm 1), or of the GRPO baseline when the
 * queries are given:
 *
 * 1. the challenger samples N queries (GRPO: read from a dataset);
 * 2. the solver samples G answers per query (the query as an ordinary user turn);
 * 3. task rewards R through the {@link TaskReward} interface, and for LSP the quality
 *    self-reward R_Q from the frozen reference model acting as judge; the reference's log-probs
 *    of every sampled sequence (its own forward over the same rows), and with the KL in the
 *    reward (kl.ts) each sequence's penalty beta * sum_t (log pi - log pi_ref);
 * 4. advantages by {@link lspAdvantages};
 * 5. the losses L_sol + alpha_ch L_ch (GRPO: L_sol only), with the KL term per token when it is
 *    in the loss, and ONE optimizer step: every sequence of the iteration goes through the
 *    policy's forward/backward in passes of at most `rowsPerPass` rows (grouped by length)
 *    whose gradients are summed, then AdamW steps once.
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
import { type Completion, sampleCompletions } from "../model/chat_replies.ts";
import type { LlamaModel } from "../model/llama.ts";
import type { ChatTokenizer } from "../model/tokenizer.ts";
import { type RewardItem, scoreChecked, type TaskReward } from "../rewards/reward.ts";
import type { AdamW } from "../train/optimizer.ts";
import { scoreLogp } from "../train/score.ts";
import { passPerMicroBatch, trainStep, type TrainStepResult } from "../train/step.ts";
import {
  type AdvantageNormalization,
  type LspAdvantages,
  lspAdvantages,
  type RewardPenalty,
} from "./advantages.ts";
import { meanKlPerToken, type SequenceKl, sequenceKl } from "./kl.ts";
import { challengerConversation, solverConversation } from "./conversations.ts";
import {
  countLogprobMismatches,
  type LspLossOptions,
  lspMicroLoss,
  packRollouts,
  referenceLogprobs,
  type RlMicroBatch,
  roleNormalizers,
  type RoleTally,
  type RolloutSequence,
} from "./lsp_loss.ts";
import { type IterationMetrics, mean, meanStd, meanStdValues, type QueryStats } from "./metrics.ts";
import type { QualityJudge, SelfRewardResult } from "./self_reward.ts";

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
  selfRewardScale: number;
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
  judge: QualityJudge | null;
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
  metrics: IterationMetrics;
  seconds: IterationTimes;
  /** Tokens sampled (challenger + solver) and tokens through the training forward. */
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

/** The rewards of step 3, grouped by query ([i][j] = answer j to query i). */
interface Rewards {
  /** Task reward R, flat in answer order (i*G + j) and grouped. */
  flat: number[];
  R: number[][];
  /** Self-reward R_Q as judged (unweighted), or null without a judge. */
  RQ: number[][] | null;
  judged: SelfRewardResult | null;
}

/** The iteration's rollouts packed for the passes, with the reference's view of them. */
interface ScoredRollouts {
  seqs: RolloutSequence[];
  micro: RlMicroBatch[];
  /** Per rollout (same order as `seqs`): its log-ratio to the reference. */
  kl: SequenceKl[];
}

/** What the training step of step 5 reports for the metrics. */
interface StepOutcome {
  step: TrainStepResult;
  tallies: { solver: RoleTally; challenger: RoleTally }[];
  logprobCheck: { compared: number; mismatches: number; maxAbsDiff: number };
  trainedTokens: number;
}

const clock = () => performance.now() / 1000;

/** Step 3: R for every answer and, with a judge, R_Q. */
async function scoreAnswers(
  actors: LspActors,
  queries: string[],
  answers: Completion[],
  G: number,
  seed: number,
  judgeStream: number,
  seconds: IterationTimes,
): Promise<Rewards> {
  const items: RewardItem[] = answers.map((a, k) => ({
    query: queries[Math.floor(k / G)],
    answer: a.text,
  }));
  let t = clock();
  const flat = await scoreChecked(actors.taskReward, items);
  seconds.rewards = clock() - t;
  t = clock();
  const judged = actors.judge ? await actors.judge.score(items, seed, judgeStream) : null;
  seconds.selfReward = clock() - t;
  const group = (xs: number[]) =>
    Array.from({ length: queries.length }, (_, i) => xs.slice(i * G, (i + 1) * G));
  return { flat, R: group(flat), RQ: judged ? group(judged.scores) : null, judged };
}

/**
 * The rollouts of the iteration, challenger rows (LSP) first, then the N*G solver rows (answer j
 * to query i at N' + i*G + j), packed into passes and scored by the frozen reference. Their
 * advantages are filled in after step 4.
 */
async function scoreRollouts(
  actors: LspActors,
  cfg: LspIterationConfig,
  challenger: Completion[],
  answers: Completion[],
): Promise<ScoredRollouts> {
  const seqs: RolloutSequence[] = [...challenger, ...answers].map((c, k) => ({
    role: k < challenger.length ? "challenger" : "solver",
    prompt: c.prompt,
    completion: c.tokens,
    logprobs: c.logprobs,
    advantage: 0,
  }));
  const micro = packRollouts(seqs, cfg.rowsPerPass, actors.tokenizer.padId);
  for (const mb of micro) mb.refLogp = await scoreLogp(actors.reference, mb);
  const ref = referenceLogprobs(micro, seqs.length);
  return { seqs, micro, kl: seqs.map((s, i) => sequenceKl(s.logprobs, ref[i])) };
}

/** The KL-in-the-reward penalties beta * sum_t lr_t, per query and per answer. */
function klPenalty(r: ScoredRollouts, nChallenger: number, N: number, G: number, beta: number) {
  const at = (i: number) => beta * r.kl[i].k1;
  const penalty: RewardPenalty = {
    challenger: Array.from({ length: nChallenger }, (_, i) => at(i)),
    solver: Array.from(
      { length: N },
      (_, i) => Array.from({ length: G }, (_, j) => at(nChallenger + i * G + j)),
    ),
  };
  return penalty;
}

/** Step 4's advantages into the packed rows. */
function assignAdvantages(r: ScoredRollouts, adv: LspAdvantages, nChallenger: number, G: number) {
  const of = (i: number) =>
    i < nChallenger
      ? adv.challenger[i]
      : adv.solver[Math.floor((i - nChallenger) / G)][(i - nChallenger) % G];
  r.seqs.forEach((s, i) => (s.advantage = of(i)));
  for (const mb of r.micro) mb.advantages = mb.seqIndex.map(of);
}

/** Step 5: the losses at the generation log-probs and one optimizer step over all rollouts. */
async function trainOnRollouts(
  actors: LspActors,
  cfg: LspIterationConfig,
  r: ScoredRollouts,
  lr: number,
): Promise<StepOutcome> {
  const { seqs, micro } = r;
  const norm = roleNormalizers(seqs, cfg.aggregation);
  const tallies: StepOutcome["tallies"] = [];
  const check = { compared: 0, mismatches: 0, maxAbsDiff: 0 };
  const passes = passPerMicroBatch<RlMicroBatch>(actors.policy, { recompute: cfg.recompute });
  const step = await trainStep(passes, actors.optimizer, micro, lr, (logp, mb) => {
    const m = countLogprobMismatches(mb, logp);
    check.mismatches += m.mismatches;
    check.compared += m.compared;
    check.maxAbsDiff = Math.max(check.maxAbsDiff, m.maxAbsDiff);
    const l = lspMicroLoss(mb, mb.genLogp, norm, cfg);
    tallies.push({ solver: l.solver, challenger: l.challenger });
    return l;
  });
  const trainedTokens = seqs.reduce((a, s) => a + s.prompt.length + s.completion.length, 0);
  return { step, tallies, logprobCheck: check, trainedTokens };
}

/** Mean -log pi of the sampled tokens of some completions. */
function meanNegLogprob(cs: Completion[]): number {
  const n = cs.reduce((a, s) => a + s.logprobs.length, 0);
  return n ? -cs.reduce((a, s) => a + s.logprobs.reduce((x, y) => x + y, 0), 0) / n : 0;
}

/** What the challenger wrote: distinct, and valid where the task reward can tell. */
function queryStats(queries: string[], taskReward: TaskReward): QueryStats {
  const validity = taskReward.queryValidity?.(queries) ?? null;
  const share = (f: (v: { wellFormed: boolean; inRange: boolean }) => boolean) =>
    validity ? validity.filter(f).length / queries.length : null;
  return {
    distinctShare: new Set(queries).size / queries.length,
    wellFormedShare: share((v) => v.wellFormed),
    inRangeShare: share((v) => v.inRange),
  };
}

/** The iteration's metrics.jsonl line. */
function iterationMetrics(
  iteration: number,
  lr: number,
  selfPlay: boolean,
  challenger: Completion[],
  answers: Completion[],
  rewards: Rewards,
  adv: LspAdvantages,
  scored: ScoredRollouts,
  out: StepOutcome,
  queries: QueryStats | null,
): IterationMetrics {
  const sum = (role: "solver" | "challenger", f: (x: RoleTally) => number) =>
    out.tallies.reduce((a, x) => a + f(x[role]), 0);
  const nCh = challenger.length;
  const metrics: IterationMetrics = {
    iter: iteration,
    solverReward: meanStd(rewards.flat),
    queryValue: meanStdValues(adv.queryValue),
    zeroVarianceShare: adv.zeroVarianceShare,
    loss: {
      total: out.step.loss,
      solver: sum("solver", (x) => x.loss),
      challenger: sum("challenger", (x) => x.loss),
    },
    kl: {
      solver: meanKlPerToken(scored.kl.slice(nCh)),
      challenger: selfPlay ? meanKlPerToken(scored.kl.slice(0, nCh)) : null,
    },
    length: {
      query: selfPlay ? meanStd(challenger.map((s) => s.tokens.length)) : null,
      answer: meanStd(answers.map((a) => a.tokens.length)),
      queryStoppedShare: selfPlay ? mean(challenger.map((s) => s.stopped ? 1 : 0)) : null,
      answerStoppedShare: mean(answers.map((a) => a.stopped ? 1 : 0)),
    },
    entropy: {
      solver: meanNegLogprob(answers),
      challenger: selfPlay ? meanNegLogprob(challenger) : null,
    },
    gradNorm: out.step.gradNorm,
    clipScale: out.step.clipScale,
    lr,
    logprobCheck: out.logprobCheck,
  };
  if (selfPlay) {
    metrics.challengerAdvantage = meanStdValues(adv.challenger);
    metrics.challengerReward = meanStd(adv.challengerReward);
    if (queries) metrics.queries = queries;
  }
  const j = rewards.judged;
  if (j) {
    metrics.selfReward = {
      ...meanStd(j.scores),
      malformed: j.malformed,
      outOfRange: j.outOfRange,
      truncated: j.truncated,
      histogram: j.histogram,
    };
  }
  return metrics;
}

/** The iteration's samples.jsonl entry: every query with its answers and their rewards. */
function querySamples(
  queries: string[],
  answers: Completion[],
  rewards: Rewards,
  adv: LspAdvantages,
  selfPlay: boolean,
  G: number,
): QuerySample[] {
  return queries.map((q, i) => ({
    query: q,
    queryValue: adv.queryValue[i],
    challengerAdvantage: selfPlay ? adv.challenger[i] : null,
    answers: Array.from({ length: G }, (_, j) => ({
      answer: answers[i * G + j].text,
      reward: rewards.R[i][j],
      selfReward: rewards.RQ ? rewards.RQ[i][j] : null,
      judge: rewards.judged ? rewards.judged.outputs[i * G + j] : null,
    })),
  }));
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
  const { policy, tokenizer: tok } = actors;
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
  const stream = (role: number) => 4 * iteration + role;
  const sampling = (o: SamplingOptions, role: number) => ({
    ...o,
    seed,
    stream: stream(role),
    batchSize: cfg.generationBatch,
  });

  // 1. The challenger samples N queries (GRPO: they are given).
  let t = clock();
  let challenger: Completion[] = [];
  if (selfPlay) {
    const prompt = tok.encodeChat(challengerConversation(cfg.challengerPrompt!), {
      addGenerationPrompt: true,
    });
    const prompts = Array.from({ length: N }, () => prompt);
    challenger = await sampleCompletions(policy, tok, prompts, sampling(cfg.challenger, 0));
  }
  const queries = selfPlay ? challenger.map((s) => s.text) : givenQueries!;
  seconds.challengerGeneration = clock() - t;

  // 2. The solver samples G answers per query: answer j to query i is row i*G + j.
  t = clock();
  const solverPrompts = queries.flatMap((q) => {
    const p = tok.encodeChat(solverConversation(q), { addGenerationPrompt: true });
    return Array.from({ length: G }, () => p);
  });
  const answers = await sampleCompletions(policy, tok, solverPrompts, sampling(cfg.solver, 1));
  seconds.solverGeneration = clock() - t;

  // 3. Rewards: R from the task reward, R_Q from the judge (scaled before advantages), and the
  // reference's log-probs of every sequence, for the KL term in the reward or in the loss.
  const rewards = await scoreAnswers(actors, queries, answers, G, seed, stream(2), seconds);
  const s = cfg.selfRewardScale;
  const scaledRQ = rewards.RQ ? rewards.RQ.map((row) => row.map((x) => s * x)) : null;
  t = clock();
  const scored = await scoreRollouts(actors, cfg, challenger, answers);
  const penalty = cfg.kl.in === "reward"
    ? klPenalty(scored, challenger.length, N, G, cfg.beta)
    : null;

  // 4. Advantages.
  const adv = lspAdvantages(rewards.R, scaledRQ, cfg.advantageNorm, penalty);
  assignAdvantages(scored, adv, challenger.length, G);

  // 5. Losses and one optimizer step.
  const out = await trainOnRollouts(actors, cfg, scored, lr);
  seconds.training = clock() - t;

  const qStats = selfPlay ? queryStats(queries, actors.taskReward) : null;
  return {
    metrics: iterationMetrics(
      iteration,
      lr,
      selfPlay,
      challenger,
      answers,
      rewards,
      adv,
      scored,
      out,
      qStats,
    ),
    seconds,
    generatedTokens: [...challenger, ...answers].reduce((a, s) => a + s.tokens.length, 0),
    trainedTokens: out.trainedTokens,
    samples: querySamples(queries, answers, rewards, adv, selfPlay, G),
  };
}
