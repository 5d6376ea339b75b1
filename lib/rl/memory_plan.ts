/**
 * The GPU memory plan of an `lsp` or `grpo` run, from its resolved manifest alone (no GPU, no
 * weights): the persistent state (policy, AdamW, frozen reference and reward model) plus the
 * largest of the phases that run one at a time in an iteration (generation, scoring, the
 * training step, evaluation), by buffer class. `deno task exp <name> --dry-run` prints it.
 *
 * Every byte figure comes from lib/model/memory_plan.ts, whose functions tests hold to what the
 * allocators create. What a manifest does not fix is an assumption the printout states: prompt
 * token counts (prompt text at 3 characters per token plus a 32-token chat template), and the
 * weight storage "auto" resolves from the config's torch_dtype (BF16 checkpoints stay 16-bit).
 *
 * @module
 */
import { join } from "node:path";
import { type LlamaConfig, loadLlamaConfig } from "../model/config.ts";
import {
  backwardPlan,
  computeCopyBytes,
  forwardPassPlan,
  generationPlan,
  optimizerPlan,
  type PlanLine,
  planTotal,
  weightBytes,
} from "../model/memory_plan.ts";
import type { WeightStorage, WeightStorageChoice } from "../model/weights.ts";
import { type WeightPrecision, weightPrecisionOf } from "../model/precision.ts";
import { resolveModelConfig } from "../model/config_field.ts";
import { latestCheckpoint } from "../train/checkpoint.ts";
import type { ModelSource } from "../data/model_source.ts";
import { projectPath } from "../util/project_path.ts";

/** A memory plan: persistent lines, phases (the largest counts) and the budget it is held to. */
export interface MemoryPlan {
  title: string;
  assumptions: string[];
  persistent: PlanLine[];
  phases: { name: string; lines: PlanLine[] }[];
}

/** Published configs, for plans made before the weights are downloaded. */
const PUBLISHED_CONFIGS: Record<string, string> = {
  "meta-llama/Llama-3.2-3B-Instruct": "experiments/assets/lsp/llama-3.2-3b-instruct-config.json",
  "Skywork/Skywork-Reward-V2-Llama-3.2-3B":
    "experiments/assets/lsp/reward-llama-3.2-3b-config.json",
};

/** The config a model source will load, and where it was found. */
export async function plannedConfig(
  src: ModelSource,
  field: string,
): Promise<{ config: LlamaConfig; from: string }> {
  if (src.synthetic !== undefined) {
    return {
      config: await resolveModelConfig(src.synthetic, `${field}.synthetic`),
      from: "synthetic",
    };
  }
  const dir = src.dir ? projectPath(src.dir) : src.env ? Deno.env.get(src.env) ?? "" : "";
  if (dir) return { config: await loadLlamaConfig(dir), from: dir };
  if (src.bundle) {
    const ckpt = await latestCheckpoint(join(projectPath(src.bundle), "checkpoints"))
      .catch(() => null);
    if (ckpt) return { config: await loadLlamaConfig(ckpt), from: ckpt };
  }
  const published = PUBLISHED_CONFIGS[src.download];
  if (published) {
    return {
      config: await resolveModelConfig(published, `${field} (published config)`),
      from: `${published} (the published config of ${src.download}; weights not present)`,
    };
  }
  throw new Error(
    `${field}: no config to plan with: set ${src.env || `${field}.dir`} to the model folder`,
  );
}

/** "auto" storage as loading would resolve it, judged from the config's torch_dtype. */
function plannedStorage(choice: WeightStorageChoice, c: LlamaConfig, synthetic: boolean) {
  if (choice !== "auto") return choice;
  return !synthetic && c.torchDtype === "bfloat16" ? "bf16" : "f32";
}

/** Prompt tokens assumed for a prompt text: 3 characters per token plus a chat template. */
export const promptTokens = (text: string): number => Math.ceil(text.length / 3) + 32;

/** What the plan needs of an lsp/grpo manifest (the kinds' parsed parameters have it). */
export interface RlPlanParams {
  model: ModelSource;
  reference: { storage: WeightStorageChoice };
  /** Absent: f32 (no compute copies). */
  precision?: { weights: WeightPrecision };
  queries: number;
  answersPerQuery: number;
  rowsPerPass: number;
  generationBatch: number;
  recompute: boolean;
  solver: { maxNewTokens: number };
  reward: {
    kind: string;
    model: ModelSource;
    batchSize: number;
    maxTokens: number;
    storage: WeightStorageChoice;
  };
  eval: { kind: string; maxNewTokens: number; batchSize: number };
  challenger?: { maxNewTokens: number; prompt: { text: string } | { file: string } };
  selfReward?: {
    enabled: boolean;
    maxNewTokens: number;
    batchSize?: number;
    prompt: { text: string } | { file: string };
  };
}

async function promptText(p: { text: string } | { file: string }): Promise<string> {
  return "text" in p ? p.text : await Deno.readTextFile(projectPath(p.file));
}

/** The memory plan of an lsp (challenger present) or grpo run. */
export async function rlMemoryPlan(
  p: RlPlanParams,
  maxBinding = 2 ** 31 - 4,
): Promise<MemoryPlan> {
  const policy = await plannedConfig(p.model, "model");
  const c = policy.config;
  const synthetic = p.model.synthetic !== undefined;
  const refStorage: WeightStorage = plannedStorage(p.reference.storage, c, synthetic);
  const assumptions = [
    `policy config: ${policy.from}`,
    `reference storage ${p.reference.storage} -> ${refStorage}`,
  ];
  const persistent: PlanLine[] = [
    { what: "policy weights (f32)", bytes: weightBytes(c, "f32") },
    ...optimizerPlan(c),
  ];
  const precision = weightPrecisionOf(p.precision);
  if (precision === "bf16") {
    persistent.push({
      what: "policy compute copies (packed bf16)",
      bytes: computeCopyBytes(c, precision),
    });
  }
  persistent.push(
    { what: `reference weights (${refStorage})`, bytes: weightBytes(c, refStorage) },
  );
  if (p.reward.kind === "model") {
    const rm = await plannedConfig(p.reward.model, "reward.model");
    const st = plannedStorage(p.reward.storage, rm.config, p.reward.model.synthetic !== undefined);
    assumptions.push(
      `reward model config: ${rm.from}`,
      `reward storage ${p.reward.storage} -> ${st}`,
    );
    persistent.push({ what: `reward model weights (${st})`, bytes: weightBytes(rm.config, st) });
  }

  const N = p.queries, G = p.answersPerQuery;
  const chPrompt = p.challenger ? promptTokens(await promptText(p.challenger.prompt)) : 0;
  const chNew = p.challenger?.maxNewTokens ?? 0;
  // A solver prompt is a query (at most the challenger's output; GRPO: assumed 256) in a chat.
  const query = p.challenger ? chNew : 256;
  const solverPrompt = query + 32;
  assumptions.push(
    p.challenger
      ? `challenger prompt ${chPrompt} tokens (3 characters per token + 32)`
      : "GRPO queries of at most 256 tokens",
    "solver prompt = query + 32 template tokens",
  );
  const phases: MemoryPlan["phases"] = [];
  const gen = (name: string, batch: number, promptLen: number, newTokens: number) =>
    phases.push({
      name,
      lines: generationPlan(c, {
        batch,
        maxPromptLen: promptLen,
        promptTokens: batch * promptLen,
        maxNewTokens: newTokens,
      }),
    });
  if (p.challenger) {
    gen(
      `challenger generation (${Math.min(N, p.generationBatch)} rows)`,
      Math.min(N, p.generationBatch),
      chPrompt,
      chNew,
    );
  }
  const solverRows = Math.min(N * G, p.generationBatch);
  gen(`solver generation (${solverRows} rows)`, solverRows, solverPrompt, p.solver.maxNewTokens);
  if (p.selfReward?.enabled) {
    const judge = promptTokens(await promptText(p.selfReward.prompt)) + query +
      p.solver.maxNewTokens;
    const rows = Math.min(N * G, p.selfReward.batchSize ?? 8);
    gen(
      `self-reward judge generation (${rows} rows, reference)`,
      rows,
      judge,
      p.selfReward.maxNewTokens,
    );
  }
  // Training rows: the longest of a challenger row and a solver row.
  const S = Math.max(chPrompt + chNew, solverPrompt + p.solver.maxNewTokens);
  const B = p.rowsPerPass;
  assumptions.push(`training and reference rows: ${B} x ${S} tokens`);
  phases.push({
    name: `reference log-probs (forward-only pass ${B} x ${S})`,
    lines: forwardPassPlan(c, { B, S, forwardOnly: true }, maxBinding),
  });
  const train = { B, S, recompute: p.recompute };
  phases.push({
    name: `training step (pass ${B} x ${S}${p.recompute ? ", recompute" : ""})`,
    lines: [...forwardPassPlan(c, train, maxBinding), ...backwardPlan(c, train, maxBinding)],
  });
  if (p.reward.kind === "model") {
    const rm = (await plannedConfig(p.reward.model, "reward.model")).config;
    const pair = Math.min(p.reward.maxTokens, query + p.solver.maxNewTokens + 32);
    phases.push({
      name: `reward scoring (forward-only pass ${p.reward.batchSize} x ${pair})`,
      lines: forwardPassPlan(rm, {
        B: p.reward.batchSize,
        S: pair,
        forwardOnly: true,
        headChunkRows: 1,
      }, maxBinding),
    });
  }
  if (p.eval.kind === "alpaca") {
    assumptions.push("AlpacaEval instructions of at most 512 tokens");
    gen(
      `evaluation generation (${p.eval.batchSize} rows)`,
      p.eval.batchSize,
      512 + 32,
      p.eval.maxNewTokens,
    );
  }
  return { title: "GPU memory plan", assumptions, persistent, phases };
}

const GB = 1e9;

/** The plan as text: persistent lines, each phase, the peak, and the margin to `budget` bytes. */
export function formatMemoryPlan(plan: MemoryPlan, budget = 80 * GB): string {
  const fmt = (b: number) => `${(b / GB).toFixed(2).padStart(8)} GB`;
  const out: string[] = [`${plan.title} (1 GB = 10^9 B)`];
  for (const a of plan.assumptions) out.push(`  assumption: ${a}`);
  out.push("persistent:");
  for (const l of plan.persistent) out.push(`  ${fmt(l.bytes)}  ${l.what}`);
  const base = planTotal(plan.persistent);
  out.push(`  ${fmt(base)}  total persistent`);
  let peak = { name: "", bytes: 0 };
  for (const ph of plan.phases) {
    const t = planTotal(ph.lines);
    out.push(`phase: ${ph.name}: ${fmt(t).trim()}`);
    for (const l of ph.lines) out.push(`  ${fmt(l.bytes)}  ${l.what}`);
    if (t > peak.bytes) peak = { name: ph.name, bytes: t };
  }
  const total = base + peak.bytes;
  out.push(`peak: ${fmt(total).trim()} = persistent + ${peak.name}`);
  out.push(
    `budget ${fmt(budget).trim()}: ${total <= budget ? "fits" : "DOES NOT FIT"}, ` +
      `${((budget - total) / GB).toFixed(2)} GB to spare`,
  );
  return out.join("\n");
}

/** The peak of a plan in bytes (persistent plus the largest phase). */
export function planPeak(plan: MemoryPlan): number {
  return planTotal(plan.persistent) +
    Math.max(0, ...plan.phases.map((p) => planTotal(p.lines)));
}
