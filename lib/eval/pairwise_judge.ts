/**
 * A pairwise LLM judge in the style of AlpacaEval's weighted annotators: any HF Llama-architecture
 * instruct model, run by our engine, is shown one instruction and two outputs under two one-token
 * labels and asked which output is better; the verdict is read from its next-token logits at
 * the start of its reply, never from sampled text. The probability that the first-shown output
 * is better is the softmax over the two label tokens' logits (AlpacaEval reads the same ratio
 * from the labels' log-probabilities, `logprob_parser`).
 *
 * Every pair is judged in both presentation orders, which cancels the judge's position bias:
 * the preference for output_2 is the mean of P(output_2 better) over the two orders. A reading
 * is unreadable when neither label is among the judge's `labelTopK` most likely next tokens
 * (AlpacaEval reads the top 5 log-probs and drops a judgement with neither label among them);
 * a pair with an unreadable order has no preference. Non-finite logits are an error.
 *
 * Prompts are the manifest's template (`{instruction}`, `{output_1}`, `{output_2}`,
 * `{label_1}`, `{label_2}`, each filled in one pass so an output that contains a placeholder is
 * left as written) as one user turn in the judge's own chat template with the generation
 * prompt, read in length-sorted batches (next_token_logits.ts): a verdict is the same bits alone
 * or in any batch.
 *
 * @module
 */
import type { LlamaModel } from "../model/llama.ts";
import { nextTokenLogits } from "../model/next_token_logits.ts";
import { UserError } from "../util/user_error.ts";
import type { ChatTokenizer } from "../model/tokenizer.ts";

/** The placeholders a judge template must contain. */
export const JUDGE_PLACEHOLDERS = [
  "instruction",
  "output_1",
  "output_2",
  "label_1",
  "label_2",
] as const;

/** What the judge's next-token logits say about one prompt. */
export interface LabelReading {
  /** The two labels' logits (label_1 names the output shown first). */
  labelLogits: [number, number];
  /** How many tokens have a strictly larger logit than each label (0 = the judge's top token). */
  labelRanks: [number, number];
  /** The two labels' share of the whole next-token distribution. */
  labelMass: number;
  /** P(label_1) = softmax over the two labels' logits: the first-shown output is better. */
  pFirst: number;
}

/**
 * Reads one next-token logits row: the softmax over the two label ids' logits (computed
 * stably in f64), their ranks and their share of the full distribution. Throws on a
 * non-finite logit, naming `where` and the token id.
 */
export function readLabels(
  logits: ArrayLike<number>,
  ids: readonly [number, number],
  where: string,
): LabelReading {
  let max = -Infinity;
  for (let t = 0; t < logits.length; t++) {
    const x = logits[t];
    if (!Number.isFinite(x)) {
      throw new UserError(`${where}: the judge's logit of token ${t} is ${x} (non-finite logits)`);
    }
    if (x > max) max = x;
  }
  let z = 0;
  for (let t = 0; t < logits.length; t++) z += Math.exp(logits[t] - max);
  const l1 = logits[ids[0]], l2 = logits[ids[1]];
  const ranks: [number, number] = [0, 0];
  for (let t = 0; t < logits.length; t++) {
    if (logits[t] > l1) ranks[0]++;
    if (logits[t] > l2) ranks[1]++;
  }
  // sigmoid(l1 - l2), the two-way softmax, without overflow for large differences.
  const d = l1 - l2;
  const pFirst = d >= 0 ? 1 / (1 + Math.exp(-d)) : Math.exp(d) / (1 + Math.exp(d));
  return {
    labelLogits: [l1, l2],
    labelRanks: ranks,
    labelMass: (Math.exp(l1 - max) + Math.exp(l2 - max)) / z,
    pFirst,
  };
}

/** One presentation order's reading. */
export interface OrderReading extends LabelReading {
  /** Which output was shown first (under label_1). */
  first: "output_1" | "output_2";
  /** P(output_2 is better) in this order. */
  pOutput2: number;
  /** Whether either label is among the judge's top `labelTopK` next tokens. */
  readable: boolean;
}

/** The verdict on one pair. */
export interface PairVerdict {
  /** [output_1 shown first, output_2 shown first]. */
  orders: [OrderReading, OrderReading];
  /** P(output_2 is better), the mean over both orders; null when an order is unreadable. */
  preference: number | null;
}

/** One pair to judge. */
export interface JudgePair {
  instruction: string;
  output1: string;
  output2: string;
}

/** Options of a {@link PairwiseJudge}. */
export interface PairwiseJudgeOptions {
  /** The prompt template with the {@link JUDGE_PLACEHOLDERS}. */
  template: string;
  /** Where the template came from (named in errors). */
  templateSource: string;
  /** The two labels; each must be one token of the judge's tokenizer. */
  labels: readonly [string, string];
  /** Prompts per forward pass (default 4). */
  batchSize?: number;
  /** A reading is unreadable when neither label is in the top K (0: every reading counts). */
  labelTopK: number;
}

/** Fills `{name}` placeholders in one pass (an inserted text is never scanned again). */
export function fillJudgeTemplate(template: string, values: Record<string, string>): string {
  return template.replace(
    /\{(instruction|output_1|output_2|label_1|label_2)\}/g,
    (_, k) => values[k],
  );
}

/** A pairwise judge; see the module doc. */
export class PairwiseJudge {
  readonly model: LlamaModel;
  readonly tokenizer: ChatTokenizer;
  readonly labels: readonly [string, string];
  /** The labels' token ids. */
  readonly labelIds: [number, number];
  readonly batchSize: number;
  readonly labelTopK: number;
  readonly source: string;
  #template: string;

  /** Checks the model, tokenizer, template and labels; `source` names the judge in errors. */
  constructor(
    model: LlamaModel,
    tokenizer: ChatTokenizer,
    opts: PairwiseJudgeOptions,
    source = "judge",
  ) {
    this.source = source;
    if (model.config.architecture !== "LlamaForCausalLM") {
      throw new UserError(
        `${source}/config.json: the judge must be a LlamaForCausalLM (an instruct model), got ` +
          `${model.config.architecture}`,
      );
    }
    if (tokenizer.chatTemplate === null) {
      throw new UserError(
        `${source}/tokenizer_config.json: no chat_template; the judge reads its prompt as a ` +
          `user turn in its own chat template (use an instruct model)`,
      );
    }
    if (tokenizer.vocabSize > model.config.vocabSize) {
      throw new UserError(
        `${source}: the tokenizer has ${tokenizer.vocabSize} ids but the model's vocab is ` +
          `${model.config.vocabSize}`,
      );
    }
    for (const p of JUDGE_PLACEHOLDERS) {
      if (!opts.template.includes(`{${p}}`)) {
        throw new UserError(`${opts.templateSource}: the judge prompt has no {${p}} placeholder`);
      }
    }
    const ids = opts.labels.map((label, i) => {
      const t = tokenizer.encode(label, { addSpecialTokens: false });
      if (t.length !== 1) {
        throw new UserError(
          `eval.judge.labels[${i}]: "${label}" is ${t.length} tokens for the judge's tokenizer ` +
            `(${source}); each label must be exactly one token`,
        );
      }
      return t[0];
    }) as [number, number];
    if (ids[0] === ids[1]) {
      throw new UserError(
        `eval.judge.labels: "${opts.labels[0]}" and "${opts.labels[1]}" are one token`,
      );
    }
    const batchSize = opts.batchSize ?? 4;
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new UserError(`${source}: batchSize must be an integer >= 1, got ${batchSize}`);
    }
    this.model = model;
    this.tokenizer = tokenizer;
    this.labels = opts.labels;
    this.labelIds = ids;
    this.batchSize = batchSize;
    this.labelTopK = opts.labelTopK;
    this.#template = opts.template;
  }

  /** The prompt token ids for one order: `first` under label_1, `second` under label_2. */
  encodePrompt(instruction: string, first: string, second: string): number[] {
    const text = fillJudgeTemplate(this.#template, {
      instruction,
      output_1: first,
      output_2: second,
      label_1: this.labels[0],
      label_2: this.labels[1],
    });
    return this.tokenizer.encodeChat([{ role: "user", content: text }], {
      addGenerationPrompt: true,
    });
  }

  /** The judge's label readings for token prompts, in order (batched, shortest first). */
  async readPrompts(
    prompts: readonly number[][],
    names: readonly string[],
  ): Promise<LabelReading[]> {
    const limit = this.model.config.maxPositionEmbeddings;
    prompts.forEach((p, i) => {
      if (p.length === 0 || p.length > limit) {
        throw new UserError(
          `${this.source}: ${names[i]} is ${p.length} tokens; the judge takes 1..${limit}`,
        );
      }
    });
    const out = new Array<LabelReading>(prompts.length);
    await nextTokenLogits(
      this.model,
      prompts,
      { batchSize: this.batchSize, padId: this.tokenizer.padId },
      (i, logits) => (out[i] = readLabels(logits, this.labelIds, names[i])),
    );
    return out;
  }

  /** Judges every pair in both orders; see the module doc. */
  async compare(pairs: readonly JudgePair[]): Promise<PairVerdict[]> {
    const prompts: number[][] = [], names: string[] = [];
    pairs.forEach((p, i) => {
      prompts.push(this.encodePrompt(p.instruction, p.output1, p.output2));
      names.push(`instruction ${i} (output_1 shown first)`);
      prompts.push(this.encodePrompt(p.instruction, p.output2, p.output1));
      names.push(`instruction ${i} (output_2 shown first)`);
    });
    const readings = await this.readPrompts(prompts, names);
    const K = this.labelTopK;
    const order = (r: LabelReading, first: OrderReading["first"]): OrderReading => ({
      first,
      ...r,
      pOutput2: first === "output_1" ? 1 - r.pFirst : r.pFirst,
      readable: K === 0 || Math.min(r.labelRanks[0], r.labelRanks[1]) < K,
    });
    return pairs.map((_, i) => {
      const a = order(readings[2 * i], "output_1"), b = order(readings[2 * i + 1], "output_2");
      return {
        orders: [a, b],
        preference: a.readable && b.readable ? (a.pOutput2 + b.pOutput2) / 2 : null,
      };
    });
  }
}
