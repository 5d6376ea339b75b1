/**
 * Task rewards from configuration: a manifest names `verifier` (with its options) or `model`
 * (a reward model directory and batching), and {@link createTaskReward} builds it.
 *
 * @module
 */
import type { Gpu } from "../../gpu/device.ts";
import type { TaskReward } from "./reward.ts";
import { VerifierTaskReward } from "./verifier_reward.ts";
import { RewardModel } from "./reward_model.ts";

/** The names of the available task rewards. */
export const TASK_REWARD_KINDS = ["verifier", "model"] as const;

/** A task reward as configured. */
export type RewardSpec =
  | { kind: "verifier"; malformedQuery?: "max" | "zero"; partialCredit?: number }
  | { kind: "model"; path: string; batchSize?: number; maxTokens?: number };

const KEYS: Record<RewardSpec["kind"], string[]> = {
  verifier: ["kind", "malformedQuery", "partialCredit"],
  model: ["kind", "path", "batchSize", "maxTokens"],
};

/**
 * Checks an untyped configuration object (e.g. a manifest's `reward` section) and returns it as
 * a {@link RewardSpec}; errors name `where` and the field.
 */
export function parseRewardSpec(value: unknown, where: string): RewardSpec {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`${where}: expected an object with a "kind" field`);
  }
  const v = value as Record<string, unknown>;
  const kind = v.kind;
  if (kind !== "verifier" && kind !== "model") {
    throw new Error(
      `${where}.kind: must be one of ${TASK_REWARD_KINDS.join(", ")}, got ${JSON.stringify(kind)}`,
    );
  }
  for (const k of Object.keys(v)) {
    if (!KEYS[kind].includes(k)) {
      throw new Error(`${where}.${k}: unknown field for a "${kind}" reward`);
    }
  }
  if (kind === "verifier") {
    const m = v.malformedQuery;
    if (m !== undefined && m !== "max" && m !== "zero") {
      throw new Error(`${where}.malformedQuery: must be "max" or "zero", got ${JSON.stringify(m)}`);
    }
    const p = v.partialCredit;
    if (p !== undefined && !(typeof p === "number" && p >= 0 && p <= 1)) {
      throw new Error(
        `${where}.partialCredit: must be a number in [0, 1], got ${JSON.stringify(p)}`,
      );
    }
    return { kind, malformedQuery: m, partialCredit: p as number | undefined };
  }
  if (typeof v.path !== "string" || v.path === "") {
    throw new Error(`${where}.path: the reward model directory is required (a string)`);
  }
  for (const k of ["batchSize", "maxTokens"] as const) {
    const n = v[k];
    if (n !== undefined && !(Number.isInteger(n) && (n as number) >= 1)) {
      throw new Error(`${where}.${k}: must be an integer >= 1, got ${JSON.stringify(n)}`);
    }
  }
  return {
    kind,
    path: v.path,
    batchSize: v.batchSize as number | undefined,
    maxTokens: v.maxTokens as number | undefined,
  };
}

/** Builds the configured task reward (a reward model is loaded onto `gpu`). */
export async function createTaskReward(gpu: Gpu, spec: RewardSpec): Promise<TaskReward> {
  if (spec.kind === "verifier") {
    return new VerifierTaskReward({
      malformedQuery: spec.malformedQuery,
      partialCredit: spec.partialCredit,
    });
  }
  return await RewardModel.load(gpu, spec.path, {
    batchSize: spec.batchSize,
    maxTokens: spec.maxTokens,
  });
}
