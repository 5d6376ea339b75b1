/**
 * The `tiny-pretrain` experiment kind: the `sft` kind from a seeded random Llama on the tiny
 * world's mixture, then the held-out evaluation of the final checkpoint, so the bundle that
 * later manifests build on carries its own eval.json (solver accuracy by family and level,
 * judge agreement, challenger validity).
 *
 * Also the `tiny-world-packed` dataset generator: the mixture's examples packed, in order, into
 * multi-turn conversations of at most `rowTokens` tokens. A solver example is ~24 tokens and a
 * judge example ~200, so one example per padded row of 256 wastes two thirds of every step on
 * padding; packed, a row holds ~3 examples and training sees ~3x the data for the same compute.
 * Every assistant turn is scored, so each packed exchange trains exactly as it would alone, with
 * the earlier, unrelated exchanges as context the model learns to ignore.
 *
 * @module
 */
import { z } from "zod";
import { getGpu } from "../../gpu/device.ts";
import { join } from "node:path";
import { defineKind, type RunContext } from "../experiment/kind.ts";
import { generateReplies, type ReplyOptions } from "../model/chat_replies.ts";
import { LlamaModel } from "../model/llama.ts";
import { weightPrecisionOf } from "../model/precision.ts";
import { type ChatTokenizer, loadTokenizer } from "../model/tokenizer.ts";
import { runSft, sftInputs, SftSchema } from "../train/sft.ts";
import { latestCheckpoint } from "../train/checkpoint.ts";
import { type ChatMessage, type DatasetFactory, type DatasetProvider } from "../train/data.ts";
import { tinyChatTokens, tinyDatasetFactory } from "./mixture.ts";
import { evaluateTinyWorld, formatTinyEval, type TinyEvalReport } from "./heldout_eval.ts";
import { challengerEvalMessages, HELD_OUT_SEED, scoreChallenger } from "./heldout.ts";

/** Name of the packed mixture in the dataset registry (an `sft` manifest's `data.generator`). */
export const TINY_PACKED_DATASET_NAME = "tiny-world-packed";

/** Mixture indices reserved per packed row (a row never holds more examples than this). */
const SLOTS_PER_ROW = 64;

/**
 * The mixture packed into conversations of at most `rowTokens` tokens (tiny chat format).
 * Packed example i takes, in order, those of mixture examples i*64 .. i*64+63 that still fit
 * (skipping the others), so it is a pure
 * function of (seed, i, params) like the mixture itself. `mixture` holds the mixture's own
 * parameters (maxTokens defaults to rowTokens).
 */
export function packedTinyDataset(
  seed: number,
  rowTokens: number,
  mixture: Record<string, unknown> = {},
): DatasetProvider {
  if (!Number.isInteger(rowTokens) || rowTokens < 64) {
    throw new Error(
      `tiny-world-packed dataset: rowTokens must be an integer >= 64, got ${rowTokens}`,
    );
  }
  const maxTokens = mixture.maxTokens ?? rowTokens;
  if (typeof maxTokens !== "number" || maxTokens > rowTokens) {
    throw new Error(
      `tiny-world-packed dataset: maxTokens (${maxTokens}) must be at most rowTokens (${rowTokens})`,
    );
  }
  const inner = tinyDatasetFactory({ ...mixture, maxTokens }, seed);
  return {
    description: `tiny-world packed into ${rowTokens}-token rows (${inner.description})`,
    size: null,
    example(index: number) {
      if (!Number.isInteger(index) || index < 0 || index * SLOTS_PER_ROW >= 4294967296) {
        throw new Error(`tiny-world-packed dataset: example index out of range: ${index}`);
      }
      const messages: ChatMessage[] = [];
      let tokens = 1; // bos
      for (let k = 0; k < SLOTS_PER_ROW; k++) {
        const ex = inner.example(index * SLOTS_PER_ROW + k);
        const extra = tinyChatTokens(ex) - 1; // its turns without its own bos
        // Skip what does not fit and keep filling: short solver examples use the tail.
        if (tokens + extra > rowTokens) continue;
        messages.push(...ex.messages);
        tokens += extra;
      }
      return { messages };
    },
  };
}

/** DatasetFactory of {@link packedTinyDataset}: params are `rowTokens` plus mixture options. */
export const packedTinyDatasetFactory: DatasetFactory = (params, seed) => {
  const { rowTokens, ...mixture } = params;
  if (typeof rowTokens !== "number") {
    throw new Error("tiny-world-packed dataset: rowTokens (a number, e.g. the seqLen) is required");
  }
  return packedTinyDataset(seed, rowTokens, mixture);
};

/**
 * Completes conversations with one assistant turn each through the engine's generate(). Row ids
 * are the conversation's index, so a reply does not depend on how the list is batched.
 */
export function modelTextGenerator(
  model: LlamaModel,
  tok: ChatTokenizer,
  o: ReplyOptions,
): (conversations: ChatMessage[][]) => Promise<string[]> {
  return async (conversations) => (await generateReplies(model, tok, conversations, o)).texts;
}

/** The held-out evaluation run at the end of `tiny-pretrain`. */
export const TinyEvalSchema = z.strictObject({
  /** Solver tasks per (family, level) cell. */
  perCell: z.number().int().positive().default(10),
  /** Judge cases (0 skips the judge). */
  judgeCases: z.number().int().min(0).default(120),
  /** Challenger samples (0 skips the challenger). */
  challengerSamples: z.number().int().min(0).default(70),
  /** Sampling temperature of the challenger (solver and judge are greedy). */
  challengerTemperature: z.number().min(0).default(1),
  /** Longest reply in tokens. */
  maxNewTokens: z.number().int().positive().default(64),
  /** Conversations per generate() call. */
  batchSize: z.number().int().positive().default(64),
  /** Score given to unreadable judge outputs (counted separately). */
  judgeFallback: z.number().int().min(0).max(7).default(0),
});

/** Parsed evaluation options. */
export type TinyEvalParams = z.output<typeof TinyEvalSchema>;

/** Parameters of `tiny-pretrain`: the `sft` parameters plus the final evaluation. */
export const TinyPretrainSchema = SftSchema.extend({ eval: TinyEvalSchema.prefault({}) });

/** Parsed `tiny-pretrain` parameters. */
export type TinyPretrainParams = z.output<typeof TinyPretrainSchema>;

/**
 * The held-out evaluation of a model folder: solver and judge greedy, the challenger sampled at
 * `challengerTemperature` (the way LSP samples it) from `seed`.
 */
export async function evaluateTinyModel(
  model: LlamaModel,
  tok: ChatTokenizer,
  e: TinyEvalParams,
  seed: number,
): Promise<TinyEvalReport> {
  const gen = (temperature: number, stream: number) =>
    modelTextGenerator(model, tok, {
      maxNewTokens: e.maxNewTokens,
      temperature,
      seed,
      stream,
      batchSize: e.batchSize,
    });
  const report = await evaluateTinyWorld(gen(0, 0), {
    seed: HELD_OUT_SEED,
    perCell: e.perCell,
    judgeCases: e.judgeCases,
    challengerSamples: 0,
    judgeFallback: e.judgeFallback,
  });
  if (e.challengerSamples > 0) {
    const samples = await gen(e.challengerTemperature, 1)(
      challengerEvalMessages(e.challengerSamples),
    );
    report.challenger = scoreChallenger(samples);
    report.challengerSamples = samples;
  }
  return report;
}

async function runTinyPretrain(ctx: RunContext, p: TinyPretrainParams): Promise<void> {
  const { eval: e, ...sft } = p;
  await runSft(ctx, sft);
  const ckpt = await latestCheckpoint(join(ctx.bundleDir, "checkpoints"));
  if (ckpt === null) throw new Error(`${ctx.bundleDir}: no complete checkpoint after training`);
  ctx.log(`evaluating ${ckpt} on the held-out set`);
  const gpu = await getGpu();
  const model = await LlamaModel.load(gpu, ckpt);
  model.usePrecision(weightPrecisionOf(p.precision)); // evaluated as it trained
  const tok = await loadTokenizer(ckpt);
  const report = await evaluateTinyModel(model, tok, e, ctx.seed);
  const text = formatTinyEval(report);
  ctx.log(text);
  await ctx.writeFile("eval.json", JSON.stringify(report, null, 2) + "\n", {
    deterministic: true,
  });
  await ctx.writeFile("eval.txt", text + "\n", { deterministic: true });
}

/** The `tiny-pretrain` experiment kind. */
export const tinyPretrainKind = defineKind({
  kind: "tiny-pretrain",
  description: "SFT of a small Llama on the tiny world's mixture, then its held-out evaluation",
  schema: TinyPretrainSchema,
  resumable: true,
  inputs: sftInputs,
  run: runTinyPretrain,
});
