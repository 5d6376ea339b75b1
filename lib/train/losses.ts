/**
 * Loss building blocks shared by SFT and RL. They work on per-token log-probabilities read
 * back from the GPU (one readback per step) and return the loss value together with its exact
 * derivative `dlogp` with respect to every log-prob, which is what the model's backward takes
 * (it back-propagates `sum_t dlogp[t] * logp[t]`).
 *
 * All arithmetic is done in f64 in a fixed order, so the result is deterministic; `dlogp` is
 * rounded to f32 once at the end.
 *
 * Gradient accumulation over micro-batches: pass the whole step's `normalizer` (number of
 * sequences, or number of scored tokens) to every micro-batch; the parameter gradients then
 * simply add up across micro-batches to the gradient of the full-batch loss ("sum, then scale"
 * with the scale folded into `dlogp`).
 *
 * @module
 */

/**
 * How per-token terms are reduced to the loss: "sequence-sum" sums each sequence's tokens and
 * divides by the number of sequences (LSP.md's formula); "token-mean-per-sequence" takes each
 * sequence's token mean, then the mean over sequences (TRL's `grpo` loss type); "token-mean"
 * divides the sum over all tokens by the number of tokens in the whole step (TRL's `dapo`).
 */
export type Aggregation = "sequence-sum" | "token-mean-per-sequence" | "token-mean";

/**
 * Per-token KL estimator against the reference, with lr = logp - logp_ref: k1 = lr; k2 = lr^2/2;
 * k3 = exp(-lr) + lr - 1 (Schulman's estimators; all have expectation-related meanings under
 * on-policy sampling, see lib/rl/kl.ts and DESIGN.md).
 */
export type KlEstimator = "k1" | "k2" | "k3";

/** Inputs of {@link policyLoss}. All per-token arrays are [B*S] in the packed layout. */
export interface PolicyLossInput {
  /** Policy log-prob of each target token. */
  logp: Float32Array;
  /** 1 on scored (completion) positions, 0 elsewhere. */
  mask: Float32Array;
  batch: number;
  seqLen: number;
  /** Per-sequence weight (advantage) [B]; default 1 for every sequence (maximum likelihood). */
  weights?: ArrayLike<number>;
  /** Reference log-probs; required when `klCoef` is not 0. */
  refLogp?: Float32Array;
  /** beta: weight of the KL penalty (default 0). */
  klCoef?: number;
  klEstimator?: KlEstimator;
  aggregation: Aggregation;
  /**
   * Denominator: for "sequence-sum" and "token-mean-per-sequence" the number of sequences, for
   * "token-mean" the number of scored tokens. Defaults to this batch's own count; pass the full
   * step's count when the step is split into micro-batches.
   */
  normalizer?: number;
  /** Multiplies loss and gradient (e.g. alpha_ch for the Challenger's part). Default 1. */
  scale?: number;
}

/** Result of {@link policyLoss}. */
export interface PolicyLossResult {
  /** The loss value (this micro-batch's share when a normalizer spans several). */
  loss: number;
  /** d loss / d logp[t], [B*S], zero on masked positions. */
  dlogp: Float32Array;
  /** Number of scored tokens in this batch. */
  tokens: number;
  /** Mean over scored tokens of the KL estimate (0 without a reference). */
  klMean: number;
  /** Per-sequence sum of scored log-probs [B]. */
  sequenceLogp: number[];
}

/** Per-token KL estimate and its derivative with respect to logp. */
export function klTerm(
  logp: number,
  refLogp: number,
  estimator: KlEstimator,
): { value: number; grad: number } {
  const lr = logp - refLogp;
  if (estimator === "k1") return { value: lr, grad: 1 };
  if (estimator === "k2") return { value: 0.5 * lr * lr, grad: lr };
  const e = Math.exp(-lr);
  return { value: e + lr - 1, grad: 1 - e };
}

/**
 * The policy-gradient / likelihood loss
 * `L = -(scale/Z) * sum_b c_b sum_t mask[b,t] * (w_b * logp[b,t] - beta * kl(logp, ref)[b,t])`
 * with Z the number of sequences ("sequence-sum": sequence log-probs are sums over tokens, c_b =
 * 1; "token-mean-per-sequence": c_b = 1 / the sequence's scored tokens) or the number of scored
 * tokens ("token-mean", c_b = 1). With w = 1 and beta = 0, "token-mean" is the mean NLL over
 * scored tokens (SFT). With beta > 0 and "sequence-sum" it is LSP.md's L_sol / L_ch.
 */
export function policyLoss(inp: PolicyLossInput): PolicyLossResult {
  const { logp, mask, batch: B, seqLen: S, aggregation } = inp;
  const n = B * S;
  if (logp.length !== n) throw new Error(`policyLoss: logp has ${logp.length} values, want ${n}`);
  if (mask.length !== n) throw new Error(`policyLoss: mask has ${mask.length} values, want ${n}`);
  const beta = inp.klCoef ?? 0;
  const estimator = inp.klEstimator ?? "k1";
  const ref = inp.refLogp;
  if (beta !== 0 && !ref) throw new Error("policyLoss: klCoef is set but refLogp is missing");
  if (ref && ref.length !== n) {
    throw new Error(`policyLoss: refLogp has ${ref.length} values, want ${n}`);
  }
  const w = inp.weights;
  if (w && w.length !== B) throw new Error(`policyLoss: ${w.length} weights for ${B} sequences`);
  let tokens = 0;
  const rowTokens = new Array<number>(B).fill(0);
  for (let i = 0; i < n; i++) {
    if (mask[i] !== 0) {
      tokens++;
      rowTokens[Math.floor(i / S)]++;
    }
  }
  const ownCount = aggregation === "token-mean" ? tokens : B;
  const Z = inp.normalizer ?? ownCount;
  if (!(Z > 0)) throw new Error(`policyLoss: normalizer must be positive, got ${Z}`);
  const c = (inp.scale ?? 1) / Z;

  const dlogp = new Float32Array(n);
  const sequenceLogp: number[] = [];
  let total = 0, klSum = 0;
  for (let b = 0; b < B; b++) {
    const wb = w ? w[b] : 1;
    // Per-sequence token mean: each token of row b counts 1/(its scored tokens).
    const cb = aggregation === "token-mean-per-sequence" && rowTokens[b] > 0 ? 1 / rowTokens[b] : 1;
    let seq = 0;
    for (let t = 0; t < S; t++) {
      const i = b * S + t;
      const m = mask[i];
      if (m === 0) continue;
      const lp = logp[i];
      seq += lp;
      let term = wb * lp, grad = wb;
      if (ref) {
        const kl = klTerm(lp, ref[i], estimator);
        klSum += kl.value;
        term -= beta * kl.value;
        grad -= beta * kl.grad;
      }
      total += cb * m * term;
      dlogp[i] = -c * cb * m * grad;
    }
    sequenceLogp.push(seq);
  }
  return { loss: -c * total, dlogp, tokens, klMean: tokens > 0 ? klSum / tokens : 0, sequenceLogp };
}

/** Mean negative log-likelihood over scored tokens (the SFT loss) and its derivative. */
export function meanNll(
  logp: Float32Array,
  mask: Float32Array,
  batch: number,
  seqLen: number,
  normalizer?: number,
): PolicyLossResult {
  return policyLoss({ logp, mask, batch, seqLen, aggregation: "token-mean", normalizer });
}
