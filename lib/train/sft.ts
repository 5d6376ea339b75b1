/**
 * The `sft` experiment kind: supervised fine-tuning on chat examples (a JSONL file or a
 * registered generator), chat-templated with the model's tokenizer, loss = mean NLL over the
 * assistant tokens of each optimizer step (all micro-batches together).
 *
 * One step is {@link trainStep} over `gradAccum` micro-batches of `batchSize` sequences. Metrics (loss, grad norm, lr,
 * tokens) go to metrics.jsonl (deterministic); tokens/s to timings.jsonl (run-specific).
 * Checkpoints every `checkpointEvery` steps and at the end; `--resume` continues from the latest
 * complete checkpoint exactly (weights, m, v, step, data position).
 *
 * @module
 */
import { projectPath } from "../util/project_path.ts";
import { z } from "zod";
import { adamwOf, OptimizerSchema, scheduleOf } from "./optimizer_schema.ts";
import { getGpu } from "../../gpu/device.ts";
import { defineKind, type RunContext } from "../experiment/kind.ts";
import { LlamaModel } from "../model/llama.ts";
import { ForwardPass } from "../model/forward.ts";
import { loadTokenizer } from "../model/tokenizer.ts";
import { packScored } from "./batch.ts";
import { meanNll } from "./losses.ts";
import { reusedPass, trainStep } from "./step.ts";
import { ModelConfigField, resolveModelConfig } from "../model/config_field.ts";
import { lrAt } from "./schedule.ts";
import {
  DataOrder,
  type DatasetProvider,
  generatedDataset,
  loadChatJsonl,
  tokenizeChat,
} from "./data.ts";
import { checkpointSaver, restoreTraining, resumeCheckpoint } from "./run_checkpoints.ts";
import { PrecisionSchema, weightPrecisionOf } from "../model/precision.ts";

const SftOptimizerSchema = OptimizerSchema.extend({ lr: z.number().positive().default(1e-5) });

/** Parameters of the `sft` kind. */
export const SftSchema = z.strictObject({
  /**
   * Start from an HF model folder (config.json, safetensors, tokenizer files), or from
   * synthetic N(0, 0.02) weights of a config (inline or a path) made from `seed`.
   */
  model: z.union([
    z.string().min(1),
    z.strictObject({ synthetic: ModelConfigField, seed: z.number().int().min(0).default(0) }),
  ]),
  /** Tokenizer folder; required with synthetic weights, else defaults to the model folder. */
  tokenizer: z.string().min(1).optional(),
  data: z.union([
    z.strictObject({ jsonl: z.string().min(1) }),
    z.strictObject({
      generator: z.string().min(1),
      params: z.record(z.string(), z.unknown()).default({}),
    }),
  ]),
  /** Optimizer steps to run. */
  steps: z.number().int().positive(),
  /** Sequences per micro-batch. */
  batchSize: z.number().int().positive().default(4),
  /** Micro-batches summed per optimizer step. */
  gradAccum: z.number().int().positive().default(1),
  /** Padded length of every sequence; a longer example is an error. */
  seqLen: z.number().int().min(2).default(256),
  /** Read fixed-size datasets in a fresh seeded order each epoch. */
  shuffle: z.boolean().default(true),
  /** Per-layer activation recomputation in the backward. */
  recompute: z.boolean().default(false),
  optimizer: SftOptimizerSchema.prefault({}),
  /** Save a checkpoint every K steps (0: only at the end). */
  checkpointEvery: z.number().int().min(0).default(0),
  /** `{ weights: "bf16" }`: packed-BF16 compute copies, f32 masters (absent: f32). */
  precision: PrecisionSchema,
});

/** Parsed `sft` parameters. */
export type SftParams = z.output<typeof SftSchema>;

async function openDataset(p: SftParams, seed: number): Promise<DatasetProvider> {
  if ("jsonl" in p.data) return await loadChatJsonl(projectPath(p.data.jsonl));
  return generatedDataset(p.data.generator, p.data.params, seed);
}

/** Runs SFT (the body of the `sft` kind). */
export async function runSft(ctx: RunContext, p: SftParams): Promise<void> {
  const gpu = await getGpu();
  ctx.recordGpu(gpu.info);
  const resumeFrom = await resumeCheckpoint(ctx);
  const fromDir = typeof p.model === "string" ? p.model : null;
  const tokenizerRel = p.tokenizer ?? fromDir;
  if (tokenizerRel === null) throw new Error("tokenizer: required when the model is synthetic");
  const tokenizerDir = resumeFrom ?? projectPath(tokenizerRel);
  const tok = await loadTokenizer(tokenizerDir);
  let model: LlamaModel;
  if (resumeFrom) model = await LlamaModel.load(gpu, resumeFrom);
  else if (typeof p.model === "string") model = await LlamaModel.load(gpu, projectPath(p.model));
  else {
    const config = await resolveModelConfig(p.model.synthetic, "model.synthetic");
    model = LlamaModel.synthetic(gpu, config, p.model.seed);
  }
  model.usePrecision(weightPrecisionOf(p.precision));
  if (tok.vocabSize > model.config.vocabSize) {
    throw new Error(
      `${tokenizerDir}: tokenizer has ${tok.vocabSize} tokens but the model's vocab is ` +
        `${model.config.vocabSize}`,
    );
  }
  const data = await openDataset(p, ctx.seed);
  const order = new DataOrder(data.size, ctx.seed, p.shuffle);
  const schedule = scheduleOf(p.optimizer, p.steps);
  const opt = adamwOf(gpu, model, p.optimizer);
  let position = 0;
  if (resumeFrom) {
    position = (await restoreTraining(resumeFrom, opt)).dataPosition;
    ctx.log(`resuming from ${resumeFrom} (step ${opt.step})`);
  }
  ctx.recordProvenance("sft", {
    data: data.description,
    parameters: opt.numel,
    resumedFrom: resumeFrom ? `checkpoints/${resumeFrom.split("/").pop()}` : null,
  });

  const B = p.batchSize, S = p.seqLen;
  const pass = new ForwardPass(model, B, S, { recompute: p.recompute });
  const save = checkpointSaver(ctx, { gpu, model, optimizer: opt, tokenizerDir });
  const checkpoint = () =>
    save({
      step: opt.step,
      dataPosition: position,
      rng: { kind: "data-order", seed: ctx.seed, shuffle: p.shuffle },
      lrSchedule: schedule,
    });

  while (opt.step < p.steps) {
    ctx.throwIfAborted();
    const t0 = performance.now();
    // Tokenize the whole step first: the loss normalizer is the step's scored-token count.
    const micro = [];
    for (let k = 0; k < p.gradAccum; k++) {
      const seqs = [];
      for (let b = 0; b < B; b++) {
        const idx = order.indexAt(position);
        const ex = data.example(idx);
        const where = `${data.description}: example ${idx}`;
        const s = tokenizeChat(tok, ex.messages, where);
        if (s.tokens.length > S) {
          throw new Error(`${where} has ${s.tokens.length} tokens, more than seqLen ${S}`);
        }
        seqs.push(s);
        position++;
      }
      micro.push(packScored(seqs, tok.padId, S));
    }
    const stepTokens = micro.reduce((a, m) => a + m.scoredCounts.reduce((x, y) => x + y, 0), 0);
    if (stepTokens === 0) throw new Error(`step ${opt.step + 1}: no assistant tokens to train on`);
    const realTokens = micro.reduce((a, m) => a + m.lengths.reduce((x, y) => x + y, 0), 0);
    const lr = lrAt(schedule, opt.step + 1);
    const { loss, gradNorm, clipScale } = await trainStep(
      reusedPass(pass),
      opt,
      micro,
      lr,
      (logp, mb) => meanNll(logp, mb.mask, B, S, stepTokens),
    );
    const seconds = (performance.now() - t0) / 1000;
    const step = opt.step;
    await ctx.appendJsonl("metrics.jsonl", {
      step,
      loss,
      gradNorm,
      clipScale,
      lr,
      tokens: stepTokens,
      sequences: B * p.gradAccum,
    }, { deterministic: true });
    await ctx.appendJsonl("timings.jsonl", {
      step,
      seconds,
      tokensPerSecond: realTokens / seconds,
    }, { deterministic: false });
    ctx.progress("sft", step, p.steps);
    if (!Number.isFinite(loss)) throw new Error(`step ${step}: loss is ${loss}`);
    if (step === p.steps || (p.checkpointEvery > 0 && step % p.checkpointEvery === 0)) {
      await checkpoint();
    }
  }
}

/** Files an SFT run reads (model or synthetic config, tokenizer, JSONL data): they enter the run id. */
export function sftInputs(p: z.infer<typeof SftSchema>): string[] {
  const out: string[] = [];
  if (typeof p.model === "string") out.push(p.model);
  else if (typeof p.model.synthetic === "string") out.push(p.model.synthetic);
  if (p.tokenizer) out.push(p.tokenizer);
  if ("jsonl" in p.data) out.push(p.data.jsonl);
  return out;
}

/** The `sft` experiment kind. */
export const sftKind = defineKind({
  kind: "sft",
  description: "supervised fine-tuning on chat examples (JSONL or a generator), resumable",
  schema: SftSchema,
  resumable: true,
  inputs: sftInputs,
  run: runSft,
});
