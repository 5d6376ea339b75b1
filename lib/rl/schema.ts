/**
 * The manifests of the RL kinds: `lsp` (Language Self-Play; LSP-Zero is `selfReward.enabled:
 * false`) and `grpo` (the data baseline). Every choice LSP.md leaves open is a field here, so the
 * resolved manifest in the bundle records it.
 *
 * @module
 */
import { z } from "zod";
import { WEIGHT_STORAGE_CHOICES } from "../model/weights.ts";
import { PrecisionSchema } from "../model/precision.ts";
import { TASK_REWARDS } from "../rewards/reward.ts";
import { EvalSchema } from "../eval/evaluation.ts";
import { OptimizerSchema } from "../train/optimizer_schema.ts";
import { ModelSourceSchema } from "../data/model_source.ts";
import { DataSchema } from "./query_source.ts";
import { klOptionProblem, type KlOptions } from "./kl.ts";
import { QUALITY_ORACLES } from "./self_reward.ts";

const PromptSourceSchema = z.union([
  z.strictObject({ text: z.string().min(1) }),
  z.strictObject({ file: z.string().min(1) }),
]);

const SamplingSchema = z.strictObject({
  maxNewTokens: z.number().int().min(1),
  temperature: z.number().min(0).default(1),
  topP: z.number().gt(0).max(1).default(1),
});

const RewardSchema = z.strictObject({
  /** `model`: a sequence-classification RM; or a registered reward (`verifier`: the tiny world's). */
  kind: TASK_REWARDS.nameSchema(["model"]),
  malformedQuery: z.enum(["max", "zero"]).default("max"),
  partialCredit: z.number().min(0).max(1).default(0),
  model: ModelSourceSchema.prefault({}),
  batchSize: z.number().int().min(1).default(4),
  maxTokens: z.number().int().min(2).default(2048),
  /** Weight storage of the frozen reward model ("auto": BF16 checkpoints stay 16-bit, exact). */
  storage: z.enum(WEIGHT_STORAGE_CHOICES).default("auto"),
});

/** `loss.kl`: k1 in the reward by default (its expected gradient is grad KL(pi || ref)). */
const KlSchema = z.strictObject({
  estimator: z.enum(["k1", "k2", "k3"]).default("k1"),
  in: z.enum(["loss", "reward"]).default("reward"),
}).refine((kl) => klOptionProblem(kl) === null, {
  error: (iss) => klOptionProblem(iss.input as KlOptions)!,
});

const common = {
  /** The policy's starting point; the frozen reference is a second copy of it. */
  model: ModelSourceSchema,
  /** The frozen reference's weight storage ("auto": 16-bit when the checkpoint is BF16, exact). */
  reference: z.strictObject({
    storage: z.enum(WEIGHT_STORAGE_CHOICES).default("auto"),
  }).prefault({}),
  /** `{ weights: "bf16" }`: the policy computes with packed-BF16 copies of f32 masters. */
  precision: PrecisionSchema,
  iterations: z.number().int().min(1),
  /** N: queries per iteration (= batchSize * gradAccum, as the paper's table). */
  queries: z.number().int().min(1).default(8),
  /** G: solver answers per query (not given by the paper). */
  answersPerQuery: z.number().int().min(2).default(4),
  /** Queries per micro-batch and micro-batches per step (paper: 4 and 2). */
  batchSize: z.number().int().min(1).default(4),
  gradAccum: z.number().int().min(1).default(2),
  /** Sequences per forward/backward pass: memory only (gradients are summed exactly). */
  rowsPerPass: z.number().int().min(1).default(4),
  /** Sequences per generate() call. */
  generationBatch: z.number().int().min(1).default(32),
  recompute: z.boolean().default(false),
  solver: SamplingSchema,
  loss: z.strictObject({
    /** The KL coefficient (the paper: 0.05). */
    beta: z.number().min(0).default(0.05),
    alphaCh: z.number().min(0).default(1),
    /**
     * "sequence-sum" (the paper's formula), "token-mean-per-sequence" (TRL's `grpo`),
     * "token-mean" over the step's tokens (TRL's `dapo`).
     */
    aggregation: z.enum(["sequence-sum", "token-mean-per-sequence", "token-mean"]).default(
      "sequence-sum",
    ),
    /** The KL's estimator and where it acts (kl.ts); the default pulls towards the reference. */
    kl: KlSchema.prefault({}),
    /** "std": divide by the group's sample std + 1e-4 (TRL's `scale_rewards="group"`). */
    advantageNorm: z.enum(["none", "std"]).default("none"),
  }).prefault({}),
  reward: RewardSchema,
  optimizer: OptimizerSchema,
  samplesEvery: z.number().int().min(1).default(10),
  /** Checkpoint every K iterations (0: only at the end). */
  checkpointEvery: z.number().int().min(0).default(0),
  /** Checkpoint the final policy (false: only the periodic ones, e.g. sweep members). */
  finalCheckpoint: z.boolean().default(true),
  eval: EvalSchema,
};

/** Parameters of the `lsp` kind. */
export const LspSchema = z.strictObject({
  ...common,
  challenger: z.strictObject({
    prompt: PromptSourceSchema,
    task: z.string().default(""),
    template: z.string().default(""),
    maxNewTokens: z.number().int().min(1),
    temperature: z.number().min(0).default(1),
    topP: z.number().gt(0).max(1).default(1),
  }),
  selfReward: z.strictObject({
    /** On: LSP; off: LSP-Zero. */
    enabled: z.boolean(),
    /**
     * Who judges: "reference" (the frozen initial model, as the paper), or a registered exact
     * judge (the tiny world's "tiny-rubric": an oracle ablation, for diagnosis only).
     */
    judge: QUALITY_ORACLES.nameSchema(["reference"]).default("reference"),
    prompt: PromptSourceSchema.default({ file: "experiments/assets/lsp/judge_prompt.txt" }),
    /** Room for a ~100-word justification, the calculation and the score tags. */
    maxNewTokens: z.number().int().min(1).default(384),
    temperature: z.number().min(0).default(0),
    max: z.number().int().min(1).default(7),
    /** Score of an unreadable or out-of-range judgement (counted in the metrics). */
    fallback: z.number().default(0),
    /**
     * R + scale * R_Q for the solver, -V + scale * V_Q for the challenger (the paper: no
     * rescaling, 1). Below 1 / (the judge points that move with correctness), R_Q cannot cancel
     * the challenger's difficulty incentive: DESIGN.md has the arithmetic.
     */
    scale: z.number().min(0).default(1),
    batchSize: z.number().int().min(1).default(32),
  }),
});

/** Parameters of the `grpo` kind. */
export const GrpoSchema = z.strictObject({
  ...common,
  /** Where the queries come from (`file`: Alpaca JSON/JSONL; `tiny`: generated tasks). */
  data: DataSchema,
});

/** Parsed `lsp` parameters. */
export type LspParams = z.output<typeof LspSchema>;
/** Parsed `grpo` parameters. */
export type GrpoParams = z.output<typeof GrpoSchema>;

/**
 * What one RL run is: the algorithm, told apart by this explicit field (LSP and LSP-Zero by
 * `selfReward.enabled`), with its parameters.
 */
export type RlRun =
  | { algorithm: "lsp"; params: LspParams }
  | { algorithm: "grpo"; params: GrpoParams };

/** The parameters every RL run has. */
export type RlParams = LspParams | GrpoParams;
