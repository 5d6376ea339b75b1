/**
 * The two LSP losses over one iteration's sampled sequences (LSP.md, "One iteration", step 4):
 *
 *   L_sol = -(1/Z_sol) sum_ij [ A_sol(i,j) logpi(a_ij|q_i) - beta KL_ij ]
 *   L_ch  = -(1/Z_ch)  sum_i  [ A_ch(i)    logpi(q_i|cp)   - beta KL_i  ]
 *   L     = L_sol + alpha_ch L_ch
 *
 * With `aggregation` "sequence-sum" a sequence's log-prob is the sum over its tokens and Z is the
 * number of sequences of the role (NG, N): the paper's formula. "token-mean-per-sequence" takes
 * each sequence's token mean first; "token-mean" divides by the role's scored-token count. The KL
 * term is in the loss per token (k1, k2 or k3) when `kl.in` is "loss"; with "reward" it was
 * already subtracted from the rewards before advantages (kl.ts) and the loss has none. The
 * per-token terms come from the training library's {@link policyLoss}, called once per role with
 * that role's rows masked in, so the two roles keep their own normalizers and alpha_ch.
 *
 * The log-probs the loss uses are those recorded at generation; the training forward's own
 * log-probs are only compared with them (bit for bit) and the mismatches counted.
 *
 * @module
 */
import { type PackedBatch, packPromptCompletions } from "../train/batch.ts";
import { type Aggregation, policyLoss } from "../train/losses.ts";
import type { KlOptions } from "./kl.ts";

/** Which of the two roles produced a sequence. */
export type Role = "solver" | "challenger";

/** One sampled sequence to train on. */
export interface RolloutSequence {
  role: Role;
  /** Conditioning tokens (the chat-templated prompt). */
  prompt: number[];
  /** Sampled tokens (the stop token included when the sequence stopped). */
  completion: number[];
  /** Log-prob of each completion token recorded at generation (temperature 1). */
  logprobs: number[];
  /** The sequence's advantage. */
  advantage: number;
}

/** A packed micro-batch of rollout sequences plus what the loss needs per row. */
export interface RlMicroBatch extends PackedBatch {
  roles: Role[];
  /** Each row's index in the rollout list it was packed from. */
  seqIndex: number[];
  advantages: number[];
  /** Generation log-probs in the packed [B*S] layout (0 where not scored). */
  genLogp: Float32Array;
  /** Reference log-probs [B*S], filled by the reference forward before training. */
  refLogp: Float32Array | null;
}

/** Loss knobs. */
export interface LspLossOptions {
  beta: number;
  alphaCh: number;
  aggregation: Aggregation;
  kl: KlOptions;
}

/** Normalizers of the whole step (all micro-batches): sequences or scored tokens per role. */
export interface RoleNormalizers {
  solver: number;
  challenger: number;
}

/** Per-role sums a step accumulates across micro-batches (for metrics). */
export interface RoleTally {
  loss: number;
  klSum: number;
  tokens: number;
}

/** The value, gradient and tallies of one micro-batch. */
export interface MicroLossResult {
  loss: number;
  dlogp: Float32Array;
  solver: RoleTally;
  challenger: RoleTally;
}

/**
 * Packs sequences into micro-batches of at most `rowsPerPass` rows. Sequences are taken longest
 * first (a stable sort, so the grouping is deterministic) and each micro-batch is padded only to
 * its own longest row: the challenger's long prompt does not pad every short solver row. A
 * row's log-probs do not depend on the padded length or on the other rows (the engine's
 * kernels are row-invariant), so the grouping changes no bits, only the work.
 * `seqLen` forces one padded length for every micro-batch instead (tests, fixed shapes).
 */
export function packRollouts(
  seqs: readonly RolloutSequence[],
  rowsPerPass: number,
  padId: number,
  seqLen?: number,
): RlMicroBatch[] {
  seqs.forEach((s, i) => {
    if (s.logprobs.length !== s.completion.length) {
      throw new Error(
        `rollout ${i}: ${s.logprobs.length} log-probs for ${s.completion.length} tokens`,
      );
    }
    if (s.prompt.length === 0) throw new Error(`rollout ${i}: empty prompt`);
  });
  const len = (s: RolloutSequence) => s.prompt.length + s.completion.length;
  const indexed = seqs.map((s, i) => ({ s, i }));
  const ordered = seqLen === undefined
    ? indexed.sort((a, b) => len(b.s) - len(a.s) || a.i - b.i)
    : indexed;
  const out: RlMicroBatch[] = [];
  for (let r0 = 0; r0 < ordered.length; r0 += rowsPerPass) {
    const rowsOf = ordered.slice(r0, r0 + rowsPerPass);
    const chunk = rowsOf.map((x) => x.s);
    const S = seqLen ?? Math.max(...chunk.map(len));
    const rows = chunk.map((s) => ({ prompt: s.prompt, completion: s.completion }));
    const packed = packPromptCompletions(rows, padId, S);
    const genLogp = new Float32Array(chunk.length * S);
    chunk.forEach((s, b) => {
      // Completion token k is the target of position prompt.length - 1 + k.
      const base = b * S + s.prompt.length - 1;
      s.logprobs.forEach((lp, k) => (genLogp[base + k] = lp));
    });
    out.push({
      ...packed,
      roles: chunk.map((s) => s.role),
      seqIndex: rowsOf.map((x) => x.i),
      advantages: chunk.map((s) => s.advantage),
      genLogp,
      refLogp: null,
    });
  }
  return out;
}

/** The step-wide normalizers of the chosen aggregation. */
export function roleNormalizers(
  seqs: readonly RolloutSequence[],
  aggregation: Aggregation,
): RoleNormalizers {
  const count = (role: Role) =>
    seqs.filter((s) => s.role === role).reduce(
      (a, s) => a + (aggregation === "token-mean" ? s.completion.length : 1),
      0,
    );
  return { solver: count("solver"), challenger: count("challenger") };
}

/**
 * L_sol + alpha_ch L_ch of one micro-batch, evaluated at `logp` (the generation log-probs),
 * with d loss / d logp for the backward. A role with no rows (GRPO has no challenger)
 * contributes nothing.
 */
export function lspMicroLoss(
  mb: RlMicroBatch,
  logp: Float32Array,
  norm: RoleNormalizers,
  opts: LspLossOptions,
): MicroLossResult {
  const B = mb.batch, S = mb.seqLen;
  const klCoef = opts.kl.in === "loss" ? opts.beta : 0;
  if (klCoef !== 0 && !mb.refLogp) throw new Error("lspMicroLoss: reference log-probs missing");
  const dlogp = new Float32Array(B * S);
  const tally = (role: Role): RoleTally => {
    const mask = new Float32Array(B * S);
    let any = false;
    for (let b = 0; b < mb.roles.length; b++) {
      if (mb.roles[b] !== role) continue;
      any = true;
      mask.set(mb.mask.subarray(b * S, (b + 1) * S), b * S);
    }
    if (!any) return { loss: 0, klSum: 0, tokens: 0 };
    const weights = Array.from(
      { length: B },
      (_, b) => mb.roles[b] === role ? mb.advantages[b] : 0,
    );
    const r = policyLoss({
      logp,
      mask,
      batch: B,
      seqLen: S,
      weights,
      refLogp: mb.refLogp ?? undefined,
      klCoef,
      klEstimator: opts.kl.estimator,
      aggregation: opts.aggregation,
      normalizer: role === "solver" ? norm.solver : norm.challenger,
      scale: role === "solver" ? 1 : opts.alphaCh,
    });
    for (let i = 0; i < dlogp.length; i++) dlogp[i] += r.dlogp[i];
    return { loss: r.loss, klSum: r.klMean * r.tokens, tokens: r.tokens };
  };
  const solver = tally("solver");
  const challenger = tally("challenger");
  return { loss: solver.loss + challenger.loss, dlogp, solver, challenger };
}

/** Scored positions where the training forward's log-prob differs from generation's bits. */
export function countLogprobMismatches(
  mb: RlMicroBatch,
  forwardLogp: Float32Array,
): { mismatches: number; maxAbsDiff: number; compared: number } {
  let mismatches = 0, maxAbsDiff = 0, compared = 0;
  for (let i = 0; i < mb.mask.length; i++) {
    if (mb.mask[i] === 0) continue;
    compared++;
    const d = Math.abs(forwardLogp[i] - mb.genLogp[i]);
    if (!Object.is(forwardLogp[i], mb.genLogp[i])) mismatches++;
    if (d > maxAbsDiff) maxAbsDiff = d;
  }
  return { mismatches, maxAbsDiff, compared };
}

/** Each sequence's reference log-probs of its sampled tokens, by rollout index. */
export function referenceLogprobs(micro: readonly RlMicroBatch[], count: number): number[][] {
  const out: number[][] = Array.from({ length: count }, () => []);
  for (const mb of micro) {
    if (!mb.refLogp) throw new Error("referenceLogprobs: the reference has not scored a batch");
    const S = mb.seqLen;
    mb.seqIndex.forEach((i, b) => {
      for (let t = 0; t < S; t++) if (mb.mask[b * S + t] !== 0) out[i].push(mb.refLogp![b * S + t]);
    });
  }
  return out;
}
