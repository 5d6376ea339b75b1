/**
 * Packing token sequences into the padded training layout the model's forward takes: B rows of
 * S positions, `targets[t] = tokens[t+1]` (position t predicts the next token), and a loss mask
 * that is 1 exactly on the positions whose target is a completion token (prompt tokens and
 * padding are masked out).
 *
 * @module
 */

/** One sequence: a prompt (conditioning only) and the completion that is scored. */
export interface PromptCompletion {
  prompt: number[];
  completion: number[];
}

/** One sequence given as tokens plus a per-token "is scored" flag (e.g. assistant turns). */
export interface ScoredTokens {
  tokens: number[];
  /** scored[i] = true when tokens[i] is a target of the loss. Same length as tokens. */
  scored: boolean[];
}

/** A padded batch in the layout `forwardLogprobs(rec, tokens, targets)` expects. */
export interface PackedBatch {
  /** Number of rows B. */
  batch: number;
  /** Padded length S of every row. */
  seqLen: number;
  /** [B*S] input tokens, padded with `padId`. */
  tokens: Uint32Array;
  /** [B*S] next tokens: targets[b*S+t] = tokens[b*S+t+1]; padding where there is none. */
  targets: Uint32Array;
  /** [B*S] 1 where targets[t] is scored, else 0. */
  mask: Float32Array;
  /** Real (unpadded) length of each row. */
  lengths: number[];
  /** Number of scored positions in each row. */
  scoredCounts: number[];
}

/** Packs prompt/completion pairs: only completion tokens are scored. */
export function packPromptCompletions(
  seqs: PromptCompletion[],
  padId: number,
  seqLen?: number,
): PackedBatch {
  return packScored(
    seqs.map((s) => ({
      tokens: [...s.prompt, ...s.completion],
      scored: [...s.prompt.map(() => false), ...s.completion.map(() => true)],
    })),
    padId,
    seqLen,
  );
}

/**
 * Packs sequences with explicit scored flags. `seqLen` defaults to the longest sequence; a
 * sequence longer than `seqLen` is an error (truncation is the caller's decision). The first
 * token of a row can never be scored (nothing predicts it).
 */
export function packScored(seqs: ScoredTokens[], padId: number, seqLen?: number): PackedBatch {
  if (seqs.length === 0) throw new Error("packScored: empty batch");
  const longest = Math.max(...seqs.map((s) => s.tokens.length));
  const S = seqLen ?? longest;
  if (!Number.isInteger(S) || S < 1) throw new Error(`packScored: bad seqLen ${S}`);
  const B = seqs.length;
  const tokens = new Uint32Array(B * S).fill(padId);
  const targets = new Uint32Array(B * S).fill(padId);
  const mask = new Float32Array(B * S);
  const lengths: number[] = [];
  const scoredCounts: number[] = [];
  seqs.forEach((s, b) => {
    const n = s.tokens.length;
    if (s.scored.length !== n) {
      throw new Error(`packScored: row ${b} has ${n} tokens but ${s.scored.length} flags`);
    }
    if (n > S) throw new Error(`packScored: row ${b} has ${n} tokens, more than seqLen ${S}`);
    if (n > 0 && s.scored[0]) throw new Error(`packScored: row ${b}: the first token is scored`);
    let count = 0;
    for (let t = 0; t < n; t++) tokens[b * S + t] = s.tokens[t];
    for (let t = 0; t + 1 < n; t++) {
      targets[b * S + t] = s.tokens[t + 1];
      if (s.scored[t + 1]) {
        mask[b * S + t] = 1;
        count++;
      }
    }
    lengths.push(n);
    scoredCounts.push(count);
  });
  return { batch: B, seqLen: S, tokens, targets, mask, lengths, scoredCounts };
}
