/**
 * A sweep manifest and its expansion into members (no member runs here): validation, the
 * members' manifests resolved exactly as `exp` resolves them, the `after` wiring, `--dry-run`,
 * and what the Slurm launcher would write and submit.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { KINDS } from "../lib/cli/kinds.ts";
import { canonicalJson } from "../lib/manifest/canonical.ts";
import { loadManifest } from "../lib/manifest/load.ts";
import { EXPERIMENTS_DIR, PROJECT_ROOT } from "../lib/runner/project.ts";
import { planJson, planSweep } from "../lib/sweep/plan.ts";
import type { SweepParams } from "../lib/sweep/schema.ts";
import {
  arraySpec,
  resourcesOf,
  sbatchArgs,
  sbatchScript,
  shellQuote,
} from "../lib/sweep/slurm_script.ts";
import { cli } from "./cli_helpers.ts";

const tmp = () => Deno.makeTempDirSync({ prefix: "sweep_plan_test_" });

/** Writes a sweep manifest and resolves it as `exp` does. */
function sweep(body: Record<string, unknown>, sets: string[] = []) {
  const dir = tmp();
  const file = join(dir, "table.jsonc");
  Deno.writeTextFileSync(
    file,
    JSON.stringify({ kind: "sweep", description: "a test sweep", ...body }),
  );
  return loadManifest(file, { experimentsDir: EXPERIMENTS_DIR, kinds: KINDS, sets });
}

const ARMS = [
  { name: "grpo", experiment: "tiny-grpo", set: { iterations: 2, "optimizer.lr": 1e-4 } },
  { name: "lsp", experiment: "tiny-lsp" },
  { name: "lsp-grpo", experiment: "tiny-grpo", after: "lsp", set: { iterations: 2 } },
];

function plan(params: SweepParams) {
  return planSweep(params, {
    sweepFile: "table.jsonc",
    experimentsDir: EXPERIMENTS_DIR,
    projectRoot: PROJECT_ROOT,
    kinds: KINDS.filter((k) => k.kind !== "sweep"),
  });
}

Deno.test("a sweep resolves with its defaults; bad arms, seeds and launchers are named", () => {
  const m = sweep({ seeds: [0, 1], arms: ARMS });
  assert.equal(m.params.workers, 1);
  assert.deepEqual(m.params.launcher, { kind: "local" });
  assert.equal(m.params.aggregate, null);
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ seeds: [0, 0], arms: ARMS }, /"seeds\[1\]": seed 0 is listed twice/],
    [{ seeds: [0], arms: [...ARMS, ARMS[0]] }, /"arms\[3\]\.name": arm "grpo" twice/],
    [
      { seeds: [0], arms: [{ name: "a", experiment: "gpu-probe", after: "b" }] },
      /"arms\[0\]\.after": no arm is called "b"/,
    ],
    [
      {
        seeds: [0],
        arms: [
          { name: "a", experiment: "tiny-grpo", after: "b" },
          { name: "b", experiment: "tiny-grpo", after: "a" },
        ],
      },
      /"after" forms a cycle: a -> b -> a/,
    ],
    [
      { seeds: [0], arms: [{ name: "a", experiment: "gpu-probe", set: { seed: 3 } }] },
      /"arms\[0\]\.set\.seed": the sweep sets each member's seed from `seeds`/,
    ],
    [
      { seeds: [0], arms: ARMS, launcher: { kind: "slurm", arms: { lsq: { time: "1:00:00" } } } },
      /"launcher\.arms\.lsq": no arm is called "lsq"/,
    ],
    [{ seeds: [0], arms: ARMS, aggregate: { kind: "nope" } }, /aggregate\.kind/],
    [
      { seeds: [0], arms: ARMS, aggregate: { kind: "metrics-table", colums: [] } },
      /unknown key "aggregate\.colums"|colums/,
    ],
    [{ seeds: [], arms: ARMS }, /seeds/],
  ];
  for (const [body, re] of bad) assert.throws(() => sweep(body), re, JSON.stringify(body));
  const agg = sweep({ seeds: [0], arms: ARMS, aggregate: { kind: "metrics-table" } });
  assert.deepEqual(agg.params.aggregate, {
    kind: "metrics-table",
    file: "metrics.jsonl",
    keys: [],
  });
});

Deno.test("members are arm x seed, each resolved exactly as `exp` resolves its arguments", () => {
  const m = sweep({ seeds: [3, 7], arms: ARMS });
  const p = plan(m.params as SweepParams);
  assert.deepEqual(p.members.map((x) => [x.id, x.dir, x.seedIndex, x.after]), [
    ["grpo/s3", "members/grpo/s3", 0, null],
    ["grpo/s7", "members/grpo/s7", 1, null],
    ["lsp/s3", "members/lsp/s3", 0, null],
    ["lsp/s7", "members/lsp/s7", 1, null],
    ["lsp-grpo/s3", "members/lsp-grpo/s3", 0, "lsp/s3"],
    ["lsp-grpo/s7", "members/lsp-grpo/s7", 1, "lsp/s7"],
  ]);
  for (const x of p.members) {
    const byExp = loadManifest(x.ref, {
      experimentsDir: EXPERIMENTS_DIR,
      kinds: KINDS,
      sets: x.sets,
    });
    assert.equal(canonicalJson(x.manifest.resolved), canonicalJson(byExp.resolved), x.id);
    assert.equal(x.manifest.resolved.seed, x.seed);
  }
  const grpo = p.members[0];
  assert.deepEqual(grpo.sets, ["iterations=2", "optimizer.lr=0.0001", "seed=3"]);
  assert.equal(grpo.manifest.name, "tiny-grpo");
  assert.equal((grpo.manifest.resolved.optimizer as { lr: number }).lr, 1e-4);
  // The dependent member starts from its upstream's bundle, named from the sweep's folder.
  const dep = p.members[4];
  assert.deepEqual(dep.manifest.resolved.model, {
    bundle: "${SELFPLAY_SWEEP_DIR}/members/lsp/s3",
    bundleExperiment: "tiny-lsp",
    dir: "",
    download: "",
    env: "",
    rootHash: "",
    seed: 0,
    syntheticTokenizer: "",
    tokenizer: "",
  });
  assert.equal(dep.manifest.resolved.iterations, 2);
  // plan.json depends on the resolved sweep manifest only (key order of `set` included).
  const reordered = sweep({
    seeds: [3, 7],
    arms: [
      { ...ARMS[0], set: { "optimizer.lr": 1e-4, iterations: 2 } },
      ARMS[1],
      ARMS[2],
    ],
  });
  assert.equal(planJson("t", plan(reordered.params as SweepParams)), planJson("t", p));
});

Deno.test("an arm's problem is named with the sweep file and the member; sweeps do not nest", () => {
  const bad = sweep({
    seeds: [0],
    arms: [{ name: "g", experiment: "tiny-grpo", set: { iteratons: 2 } }],
  });
  assert.throws(
    () => plan(bad.params as SweepParams),
    /table\.jsonc: arm "g" \(member g\/s0\): .*unknown key "iteratons" \(did you mean "iterations"\?\)/,
  );
  const dir = tmp();
  Deno.writeTextFileSync(
    join(dir, "inner.jsonc"),
    JSON.stringify({
      kind: "sweep",
      description: "x",
      seeds: [0],
      arms: [{ name: "p", experiment: "gpu-probe" }],
    }),
  );
  const nested = sweep({ seeds: [0], arms: [{ name: "s", experiment: join(dir, "inner.jsonc") }] });
  assert.throws(() => plan(nested.params as SweepParams), /arm "s" .*unknown kind "sweep"/);
  const noFinal = sweep({
    seeds: [0],
    arms: [
      { name: "lsp", experiment: "tiny-lsp", set: { finalCheckpoint: false } },
      { name: "lsp-grpo", experiment: "tiny-grpo", after: "lsp" },
    ],
  });
  assert.throws(
    () => plan(noFinal.params as SweepParams),
    /arm "lsp-grpo" starts from arm "lsp", whose members keep no final checkpoint/,
  );
  const missing = sweep({ seeds: [0], arms: [{ name: "m", experiment: "no-such-experiment" }] });
  assert.throws(() => plan(missing.params as SweepParams), /arm "m" .*no such file/);
});

Deno.test("the sbatch script runs any member by arm and seed index; submissions carry resources", () => {
  const m = sweep({
    seeds: [0, 1, 2],
    arms: ARMS,
    launcher: {
      kind: "slurm",
      partition: "gpu",
      account: "proj",
      gpus: 1,
      cpusPerTask: 8,
      mem: "120G",
      time: "2-00:00:00",
      arms: { grpo: { time: "12:00:00", extraOptions: ["--exclusive"] } },
      maxParallel: 2,
      deno: ["/opt/deno/bin/deno"],
      setup: ["module load cuda"],
    },
  });
  const params = m.params as SweepParams;
  assert.equal(params.launcher.kind, "slurm");
  if (params.launcher.kind !== "slurm") return;
  const p = plan(params);
  const jobs = p.members.map((x) => ({
    member: x,
    dir: `/shared/t/${x.dir}`,
    args: [
      "exp",
      x.ref,
      ...x.sets.flatMap((s) => ["--set", s]),
      "--out",
      `/shared/t/${x.dir}`,
      "--resume",
    ],
  }));
  const script = sbatchScript(jobs, {
    sweep: "t",
    sweepDir: "/shared/t",
    projectRoot: "/shared/selfplay",
    cwd: "/shared/selfplay",
    deno: params.launcher.deno,
    setup: params.launcher.setup,
    env: { SELFPLAY_SWEEP_DIR: "/shared/t" },
  });
  assert.match(script, /^#!\/bin\/bash\n/);
  assert.match(script, /\nexport SELFPLAY_SWEEP_DIR=\/shared\/t\nmodule load cuda\n/);
  assert.ok(
    script.includes(
      "\n  lsp-grpo/2)\n    # member lsp-grpo/s2\n    exec /opt/deno/bin/deno run -A " +
        '/shared/selfplay/main.ts exp tiny-grpo --set \'model={"bundle":' +
        '"${SELFPLAY_SWEEP_DIR}/members/lsp/s2","bundleExperiment":"tiny-lsp"}\' ' +
        "--set iterations=2 --set seed=2 --out /shared/t/members/lsp-grpo/s2 --resume ;;\n",
    ),
    script,
  );
  assert.deepEqual(
    sbatchArgs({ arm: "grpo", indices: [0, 2], afterJob: null }, params.launcher, "t", "/shared/t"),
    [
      "--parsable",
      "--job-name=t:grpo",
      "--array=0,2%2",
      "--output=/shared/t/slurm/grpo-%a.out",
      "--partition=gpu",
      "--account=proj",
      "--gres=gpu:1",
      "--cpus-per-task=8",
      "--mem=120G",
      "--time=12:00:00",
      "--exclusive",
      "/shared/t/slurm/sweep.sbatch",
      "grpo",
    ],
  );
  const dep = sbatchArgs(
    { arm: "lsp-grpo", indices: [0, 1, 2], afterJob: "41" },
    params.launcher,
    "t",
    "/shared/t",
  );
  assert.ok(dep.includes("--array=0-2%2") && dep.includes("--time=2-00:00:00"));
  assert.ok(dep.includes("--dependency=aftercorr:41") && dep.includes("--kill-on-invalid-dep=yes"));
  assert.equal(resourcesOf(params.launcher, "lsp").time, "2-00:00:00");
  assert.equal(arraySpec([5, 0, 1, 2, 7, 8]), "0-2,5,7-8");
  assert.equal(shellQuote("it's"), `'it'"'"'s'`);
});

Deno.test("exp --dry-run lists the members, their resolved manifests and the launcher's plan", async () => {
  const dir = tmp();
  const file = join(dir, "mini.jsonc");
  Deno.writeTextFileSync(
    file,
    JSON.stringify({
      kind: "sweep",
      description: "dry run",
      seeds: [0, 1],
      arms: [
        { name: "lsp", experiment: "tiny-lsp" },
        { name: "lsp-grpo", experiment: "tiny-grpo", after: "lsp" },
      ],
      launcher: { kind: "slurm", partition: "gpu", gpus: 1 },
    }),
  );
  const r = await cli(["exp", file, "--dry-run", "--out", join(dir, "out")]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).kind, "sweep", "stdout is the resolved sweep manifest alone");
  assert.match(
    r.stderr,
    /sweep mini: 2 arms x 2 seeds = 4 members; launcher slurm; bundle .*\/out/,
  );
  assert.ok(r.stderr.includes("\n  lsp-grpo/s1  tiny-grpo (grpo), starts from lsp/s1\n"));
  assert.match(r.stderr, /member lsp\/s0: deno task exp tiny-lsp --set seed=0\n\{\n/);
  assert.match(r.stderr, /#SBATCH --job-name=mini/);
  assert.match(
    r.stderr,
    /job_lsp_grpo=\$\(sbatch --parsable --job-name=mini:lsp-grpo --array=0-1 .*--partition=gpu --gres=gpu:1 .*--dependency=aftercorr:\$job_lsp --kill-on-invalid-dep=yes .*sweep\.sbatch lsp-grpo\)/,
  );
  await assert.rejects(Deno.stat(join(dir, "out")), "a dry run writes nothing");
});
