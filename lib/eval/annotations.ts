/**
 * AlpacaEval's `annotations.json`: one record per instruction with the baseline's output as
 * `output_1` (`generator_1`), the evaluated model's as `output_2` (`generator_2`), the
 * `annotator`, and `preference` on AlpacaEval's scale, 1 + P(output_2 is better), so 1 = the
 * baseline wins, 2 = the model wins, 1.5 = a tie; null where the judge's verdict was
 * unreadable (AlpacaEval writes NaN there and leaves the record out of the win rate).
 * `raw_completion` holds what our judge read (AlpacaEval keeps its judge's raw response there):
 * for each presentation order, the two labels' logits, ranks and P(first shown is better).
 *
 * @module
 */
import type { Instruction } from "../data/instructions.ts";
import type { PairVerdict } from "./pairwise_judge.ts";

/** Our annotator's name in AlpacaEval's `annotator` field. */
export const ANNOTATOR = "selfplay_weighted_pairwise_llm";

/** What one presentation order read, in `raw_completion`. */
export interface RawOrder {
  shown_first: "output_1" | "output_2";
  labels: [string, string];
  label_logits: [number, number];
  label_ranks: [number, number];
  label_mass: number;
  p_first: number;
  readable: boolean;
}

/** One record of annotations.json (AlpacaEval's field names, in its order). */
export interface AlpacaAnnotation {
  dataset: string;
  instruction: string;
  output_1: string;
  generator_1: string;
  output_2: string;
  generator_2: string;
  annotator: string;
  preference: number | null;
  raw_completion: { orders: RawOrder[] };
}

/** Builds the records: instruction i's baseline and model outputs and the judge's verdict. */
export function annotationRecords(
  items: readonly Instruction[],
  baseline: { name: string; outputs: readonly string[] },
  model: { name: string; outputs: readonly string[] },
  verdicts: readonly PairVerdict[],
  labels: readonly [string, string],
): AlpacaAnnotation[] {
  if (baseline.outputs.length !== items.length || model.outputs.length !== items.length) {
    throw new Error(
      `annotations: ${items.length} instructions, ${baseline.outputs.length} baseline and ` +
        `${model.outputs.length} model outputs`,
    );
  }
  if (verdicts.length !== items.length) {
    throw new Error(`annotations: ${items.length} instructions but ${verdicts.length} verdicts`);
  }
  return items.map((it, i) => ({
    dataset: it.dataset,
    instruction: it.instruction,
    output_1: baseline.outputs[i],
    generator_1: baseline.name,
    output_2: model.outputs[i],
    generator_2: model.name,
    annotator: ANNOTATOR,
    preference: verdicts[i].preference === null ? null : 1 + verdicts[i].preference!,
    raw_completion: {
      orders: verdicts[i].orders.map((o) => ({
        shown_first: o.first,
        labels: [labels[0], labels[1]],
        label_logits: o.labelLogits,
        label_ranks: o.labelRanks,
        label_mass: o.labelMass,
        p_first: o.pFirst,
        readable: o.readable,
      })),
    },
  }));
}

/** annotations.json content (stable key order, trailing newline). */
export function annotationsJson(records: readonly AlpacaAnnotation[]): string {
  return JSON.stringify(records, null, 2) + "\n";
}
