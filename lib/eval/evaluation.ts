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
});

/** Parsed `eval` section. */
export type EvalParams = z.output<typeof EvalSchema>;
