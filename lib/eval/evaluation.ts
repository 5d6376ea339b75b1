/**
 * The evaluation at the end of an RL run, behind one interface: the policy against its base,
 * written as bundle files. `alpaca` (AlpacaEval-style win rates, alpaca_eval.ts) is built in;
 * other evaluations (the tiny world's held-out set) are registered in {@link EVALUATIONS} by the
 * part of the program that provides them, so this area never names them.
 *
 * @module
 */
import { z } from "zod";
import type { LlamaModel } from "../model/llama.ts";
import type { ChatTokenizer } from "../model/tokenizer.ts";
import type { TaskReward } from "../rewards/reward.ts";
import { FileSourceSchema } from "../data/file_source.ts";
import { ModelSourceSchema } from "../data/model_source.ts";
import { WEIGHT_STORAGE_CHOICES } from "../model/weights.ts";
import { Registry } from "../util/registry.ts";

/** What an evaluation is given. */
export interface EvaluationInputs {
  policy: LlamaModel;
  /** The model the policy started from (the frozen reference). */
  base: LlamaModel;
  /** The tokenizer and chat template both models share. */
  tokenizer: ChatTokenizer;
  /** The manifest's `eval` section. */
  params: EvalParams;
  seed: number;
  /** The experiment's name (a generator name in AlpacaEval's files). */
  experiment: string;
  /** The run's task reward R. */
  taskReward: TaskReward;
  /** The prompt templates the run used (unfilled), where it had them. */
  prompts: { challenger?: string; judge?: string };
  /**
   * Frees everything training held on the GPU (optimizer state, policy, base, reward model);
   * afterwards `policy`, `base` and `taskReward` are unusable. An evaluation that loads a model
   * of its own (an LLM judge) calls it first, so its memory is not added to training's.
   */
  releaseTraining?: () => void;
  /** The run's log (default: nothing). */
  log?: (line: string) => void;
}

/** What an evaluation produced: bundle files (deterministic) and a one-line summary. */
export interface EvaluationResult {
  files: { path: string; content: string }[];
  summary: string;
}

/** Runs one evaluation. */
export type Evaluation = (inputs: EvaluationInputs) => Promise<EvaluationResult>;

/** Evaluations other parts of the program provide, by the name an `eval.kind` gives. */
export const EVALUATIONS: Registry<Evaluation> = new Registry<Evaluation>("evaluation");

/** The built-in evaluation kinds (the rest come from {@link EVALUATIONS}). */
export const BUILT_IN_EVALUATIONS = ["alpaca", "none"] as const;

/** The environment variable of the LLM judge's folder. */
export const JUDGE_ENV = "SELFPLAY_JUDGE_DIR";

/**
 * What to download for the LLM judge (named, with the gated-model advice, when the folder is
 * missing); any Llama-architecture instruct model works, a larger one is closer to the paper's.
 */
export const JUDGE_DOWNLOAD = "meta-llama/Llama-3.1-8B-Instruct";

/** The default pairwise judge prompt (AlpacaEval's style, our words). */
export const DEFAULT_ALPACA_JUDGE_PROMPT = "experiments/assets/lsp/alpaca_judge_prompt.txt";

/**
 * Who judges the `alpaca` evaluation. `llm`: an instruct model of its own compares the two
 * outputs (pairwise_judge.ts); `reward-model`: the run's training reward model scores each
 * output (so a policy that learnt to please it wins by construction; labelled as such), and the
 * `llm` fields are unused.
 */
export const JudgeSchema = z.strictObject({
  kind: z.enum(["llm", "reward-model"]),
  /** llm: the judge (HF LlamaForCausalLM instruct model folder, bundle or synthetic). */
  model: ModelSourceSchema.prefault({ env: JUDGE_ENV, download: JUDGE_DOWNLOAD }),
  /** llm: weight storage ("auto": BF16 checkpoints stay 16-bit, exact). */
  storage: z.enum(WEIGHT_STORAGE_CHOICES).default("auto"),
  /** llm: the pairwise prompt, with {instruction}, {output_1}, {output_2}, {label_1}, {label_2}. */
  promptFile: z.string().min(1).default(DEFAULT_ALPACA_JUDGE_PROMPT),
  /** llm: the two answer labels, one token each (AlpacaEval's weighted annotators: m and M). */
  labels: z.tuple([z.string().min(1), z.string().min(1)]).default(["m", "M"]),
  /** llm: prompts per forward pass. */
  batchSize: z.number().int().min(1).default(4),
  /** llm: a verdict is unreadable when neither label is among the top K next tokens (0: off). */
  labelTopK: z.number().int().min(0).default(5),
  /** llm: largest share of instructions with an unreadable verdict before the evaluation fails. */
  maxUnreadable: z.number().min(0).max(1).default(0.1),
  /** llm: AlpacaEval's instruction_difficulty.csv (by eval-set index), the LC instruction term. */
  instructionDifficulty: FileSourceSchema.optional(),
});

/** Parsed `eval.judge`. */
export type JudgeParams = z.output<typeof JudgeSchema>;

/** The `eval` section of an RL manifest. */
export const EvalSchema = z.strictObject({
  /** `alpaca`: win rate against the base; `none`; or a registered evaluation (`tiny`). */
  kind: EVALUATIONS.nameSchema(BUILT_IN_EVALUATIONS),
  temperature: z.number().min(0).default(0),
  maxNewTokens: z.number().int().min(1).default(48),
  batchSize: z.number().int().min(1).default(16),
  /**
   * tiny: which set ("heldout": the reported results; "validation": disjoint from it, for
   * tuning), tasks per (family, level), judge cases, challenger samples.
   */
  split: z.enum(["heldout", "validation"]).default("heldout"),
  perCell: z.number().int().min(1).default(10),
  judgeCases: z.number().int().min(0).default(0),
  challengerSamples: z.number().int().min(0).default(0),
  /** alpaca: the eval set (AlpacaEval JSON) and how much of it. */
  evalSet: FileSourceSchema.prefault({}),
  limit: z.number().int().min(1).optional(),
  /** alpaca: who judges (required there, refused elsewhere). */
  judge: JudgeSchema.optional(),
}).superRefine((e, ctx) => {
  if (e.kind === "alpaca" && e.judge === undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["judge"],
      message: 'required with kind "alpaca": {"kind": "llm", "model": {...}} (an instruct model ' +
        'judges pairwise) or {"kind": "reward-model"} (the training reward model scores)',
    });
  }
  if (e.kind !== "alpaca" && e.judge !== undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["judge"],
      message: `only the "alpaca" evaluation has a judge (kind is "${e.kind}")`,
    });
  }
});

/** Parsed `eval` section. */
export type EvalParams = z.output<typeof EvalSchema>;
