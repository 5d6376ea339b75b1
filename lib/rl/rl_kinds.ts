/**
 * The experiment kinds `lsp` (Language Self-Play; LSP-Zero is `selfReward.enabled: false`) and
 * `grpo` (the data baseline: the same iteration with queries read from a dataset and only the
 * solver loss), both run by {@link runRl}.
 *
 * @module
 */
import { resolveFileSource } from "../data/file_source.ts";
import { defineKind } from "../experiment/kind.ts";
import { alpacaEvalInputs } from "../eval/alpaca_eval.ts";
import { modelSourceInputs } from "../data/model_source.ts";
import { runRl } from "./rl_run.ts";
import { formatMemoryPlan, rlMemoryPlan } from "./memory_plan.ts";
import { GrpoSchema, LspSchema, type RlRun } from "./schema.ts";

/** The files an RL run reads (models, eval set, dataset, prompts): they enter the run id. */
function inputsOf(run: RlRun): string[] {
  const p = run.params;
  const out = modelSourceInputs(p.model, "model");
  if (p.reward.kind === "model") out.push(...modelSourceInputs(p.reward.model, "reward.model"));
  if (p.eval.kind === "alpaca") out.push(...alpacaEvalInputs(p.eval));
  if (run.algorithm === "grpo" && run.params.data.source === "file") {
    out.push(resolveFileSource(run.params.data.file, "data.file"));
  }
  if (run.algorithm === "lsp") {
    const q = run.params;
    if ("file" in q.challenger.prompt) out.push(q.challenger.prompt.file);
    if (q.selfReward.enabled && "file" in q.selfReward.prompt) out.push(q.selfReward.prompt.file);
  }
  return out;
}

/** The `lsp` kind: Language Self-Play (selfReward on) or LSP-Zero (off). */
export const lspKind = defineKind({
  kind: "lsp",
  description: "Language Self-Play: challenger and solver from one model, optional self-reward",
  schema: LspSchema,
  inputs: (params) => inputsOf({ algorithm: "lsp", params }),
  resumable: true,
  // The run's planned GPU memory by buffer class and phase, from the parameters alone.
  dryRun: async (params) => formatMemoryPlan(await rlMemoryPlan(params)),
  run: (ctx, params) => runRl(ctx, { algorithm: "lsp", params }),
});

/** The `grpo` kind: GRPO on dataset queries (the data baseline), solver loss only. */
export const grpoKind = defineKind({
  kind: "grpo",
  description: "GRPO data baseline: LSP's solver update on queries read from a dataset",
  schema: GrpoSchema,
  inputs: (params) => inputsOf({ algorithm: "grpo", params }),
  resumable: true,
  // The run's planned GPU memory by buffer class and phase, from the parameters alone.
  dryRun: async (params) => formatMemoryPlan(await rlMemoryPlan(params)),
  run: (ctx, params) => runRl(ctx, { algorithm: "grpo", params }),
});
