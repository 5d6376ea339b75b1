/**
 * One call that runs the tiny world's whole held-out evaluation through a text generator:
 * solver accuracy by family and level, judge agreement with the rubric, challenger validity.
 * The generator (the model on the GPU, greedy or low temperature) is passed in, so this file
 * stays pure and the same code scores any model, or an oracle in tests.
 */

import type { ChatMessage } from "../train/data.ts";
import {
  challengerEvalMessages,
  ChallengerReport,
  evalSetOf,
  type EvalSplit,
  formatSolverReport,
  heldOutJudgeCases,
  heldOutTasks,
  judgeMessages,
  JudgeReport,
  scoreChallenger,
  scoreJudge,
  scoreSolver,
  solverMessages,
  SolverReport,
} from "./heldout.ts";

/** Completes each conversation with one assistant turn (text up to, not including, eos). */
export type GenerateTexts = (conversations: ChatMessage[][]) => Promise<string[]>;

/** Sizes and prompts of the evaluation; every field has a default. */
export interface TinyEvalOptions {
  /** The evaluation set (default "heldout"); `seed` overrides its seed. */
  split?: EvalSplit;
  seed?: number;
  /** Solver tasks per (family, level) cell (default 10: 300 tasks). */
  perCell?: number;
  /** Judge cases (default 120; 0 skips the judge). */
  judgeCases?: number;
  /** Challenger samples (default 70; 0 skips the challenger). */
  challengerSamples?: number;
  judgePrompt?: string;
  challengerPrompt?: string;
  /** Score given to unreadable judge outputs (counted separately). Default 0. */
  judgeFallback?: number;
}

/** The evaluation's results, with a few samples of each role for the report. */
export interface TinyEvalReport {
  solver: SolverReport;
  judge: JudgeReport | null;
  challenger: ChallengerReport | null;
  challengerSamples: string[];
}

/** Runs the held-out evaluation with `generate`. */
export async function evaluateTinyWorld(
  generate: GenerateTexts,
  options: TinyEvalOptions = {},
): Promise<TinyEvalReport> {
  const set = evalSetOf(options.split ?? "heldout");
  const seed = options.seed ?? set.seed;
  const tasks = heldOutTasks({ seed, perCell: options.perCell, split: set.split });
  const answers = await generateChecked(generate, tasks.map(solverMessages), "solver");
  const solver = scoreSolver(tasks, answers);

  let judge: JudgeReport | null = null;
  const nJudge = options.judgeCases ?? 120;
  if (nJudge > 0) {
    const cases = heldOutJudgeCases({ seed, count: nJudge, split: set.split });
    const outputs = await generateChecked(
      generate,
      cases.map((c) => judgeMessages(c, options.judgePrompt)),
      "judge",
    );
    judge = scoreJudge(cases, outputs, options.judgeFallback ?? 0);
  }

  let challenger: ChallengerReport | null = null;
  let samples: string[] = [];
  const nCh = options.challengerSamples ?? 70;
  if (nCh > 0) {
    samples = await generateChecked(
      generate,
      challengerEvalMessages(nCh, options.challengerPrompt),
      "challenger",
    );
    challenger = scoreChallenger(samples);
  }
  return { solver, judge, challenger, challengerSamples: samples };
}

async function generateChecked(
  generate: GenerateTexts,
  conversations: ChatMessage[][],
  role: string,
): Promise<string[]> {
  const out = await generate(conversations);
  if (!Array.isArray(out) || out.length !== conversations.length) {
    throw new Error(
      `tiny eval (${role}): the generator returned ${
        Array.isArray(out) ? out.length : typeof out
      } texts for ${conversations.length} prompts`,
    );
  }
  return out;
}

/** Plain-text summary: accuracy by level and family, judge agreement, challenger validity. */
export function formatTinyEval(r: TinyEvalReport): string {
  const lines = ["solver accuracy (held-out, exact):", formatSolverReport(r.solver)];
  if (r.judge) {
    const j = r.judge;
    const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
    lines.push(
      `judge: agreement ${pct(j.agreement)}, within 1 point ${pct(j.within1)}, mean |error| ` +
        `${j.meanAbsError.toFixed(2)}, criteria 1-2 right ${pct(j.instructionCriteria)}, ` +
        `malformed ${j.malformed}, out of range ${j.outOfRange}, no calculation ` +
        `${j.noCalculation} (n=${j.n})`,
    );
    const cats = Object.entries(j.byCategory);
    if (cats.length > 0) {
      lines.push(
        "judge by stratum (within 1 / criteria 1-2): " +
          cats.map(([k, e]) => `${k} ${pct(e.within1)}/${pct(e.instructionCriteria)}`).join(", "),
      );
    }
  }
  if (r.challenger) {
    const c = r.challenger;
    lines.push(
      `challenger: well-formed ${(100 * c.wellFormedShare).toFixed(1)}%, in range ` +
        `${(100 * c.inRangeShare).toFixed(1)}%, distinct ${(100 * c.distinctShare).toFixed(1)}% ` +
        `(n=${c.n}); families ${JSON.stringify(c.byFamily)}; levels ${JSON.stringify(c.byLevel)}`,
    );
  }
  return lines.join("\n");
}
