import assert from "node:assert/strict";
import { getGpu } from "../gpu/device.ts";
import { tinyTestConfig } from "../lib/model/random_model.ts";
import { LlamaModel } from "../lib/model/llama.ts";
import { loadTokenizer } from "../lib/model/tokenizer.ts";
import { TINY_VOCAB_SIZE, writeTinyTokenizer } from "../lib/tinyworld/tokenizer.ts";
import {
  heldOutTasks,
  scoreSolver,
  solverMessages,
  verifierWinRate,
} from "../lib/tinyworld/heldout.ts";
import { tinyEval } from "../lib/tinyworld/policy_vs_base.ts";
import { generateReplies } from "../lib/model/chat_replies.ts";
import { winRates } from "../lib/eval/winrate.ts";
import type { TaskReward } from "../lib/rewards/reward.ts";

Deno.test("tinyEval: held-out accuracy by family and level, verifier win rate vs base", async () => {
  const gpu = await getGpu();
  const dir = await Deno.makeTempDir({ prefix: "eval_tiny_" });
  try {
    await writeTinyTokenizer(dir);
    const tokenizer = await loadTokenizer(dir);
    const config = tinyTestConfig({ vocabSize: TINY_VOCAB_SIZE, maxPositionEmbeddings: 512 });
    const policy = LlamaModel.synthetic(gpu, config, 1);
    const base = LlamaModel.synthetic(gpu, config, 2);
    const heldOut = { perCell: 1, judgeCases: 2, challengerSamples: 2 };
    const common = { tokenizer, heldOut, maxNewTokens: 4, batchSize: 11 };
    const r = await tinyEval({ policy, base, ...common });
    assert.deepEqual(r.sampling, { temperature: 0, maxNewTokens: 4, seed: 0 });
    assert.equal(r.judge, "verifier");
    assert.equal(r.policy.solver.overall.n, 30);
    assert.deepEqual(Object.keys(r.policy.solver.byLevel).sort(), ["1", "2", "3", "4", "5"]);
    assert.equal(Object.keys(r.base.solver.byFamily).length, 6);
    assert.equal(r.policy.judge!.n, 2);
    assert.equal(r.base.challenger!.n, 2);

    // The same numbers from the replies generated directly and scored by the tiny world.
    const tasks = heldOutTasks({ perCell: 1 });
    const conv = tasks.map(solverMessages);
    const opts = { temperature: 0, maxNewTokens: 4, seed: 0, batchSize: 30 };
    const p = (await generateReplies(policy, tokenizer, conv, opts)).texts;
    const b = (await generateReplies(base, tokenizer, conv, opts)).texts;
    assert.notDeepEqual(p, b);
    assert.deepEqual(r.policy.solver, scoreSolver(tasks, p));
    assert.deepEqual(r.base.solver, scoreSolver(tasks, b));
    const v = verifierWinRate(tasks, p, b);
    assert.equal(r.winRate.overall.mean, v.winRate);
    assert.deepEqual([r.winRate.wins, r.winRate.ties, r.winRate.losses], [
      v.wins,
      v.ties,
      v.losses,
    ]);
    assert.deepEqual(r.samples[0], {
      task: tasks[0].text,
      level: tasks[0].level,
      answer: tasks[0].answer,
      policy: p[0],
      base: b[0],
    });
    JSON.parse(JSON.stringify(r));

    // Any TaskReward can judge; a length judge gives non-trivial verdicts to check the pairing.
    const longer: TaskReward = {
      name: "length",
      score: (items) => Promise.resolve(items.map((it) => it.answer.length)),
    };
    const byLength = await tinyEval({ policy, base, ...common, judge: longer });
    const want = winRates(tasks.map((t, i) => ({
      subset: t.family,
      policyScore: p[i].length,
      baseScore: b[i].length,
    })));
    assert.deepEqual(byLength.winRate, want);
    assert.ok(want.wins > 0 && want.losses > 0, "the length judge should split the verdicts");
    assert.equal(byLength.judge, "length");
    const levels = winRates(tasks.map((t, i) => ({
      subset: String(t.level),
      policyScore: p[i].length,
      baseScore: b[i].length,
    })));
    assert.deepEqual(byLength.winRateByLevel, levels.perSubset);

    // A model against itself: every task a tie.
    const self = await tinyEval({ policy, base: policy, ...common, judge: longer });
    assert.equal(self.winRate.ties, 30);
    assert.equal(self.winRate.overall.mean, 0.5);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
