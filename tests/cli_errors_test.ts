// Errors a person can act on: every user-facing error class extends UserError, and main.ts tells
// a user error (one line) from a bug (stack and hint) by instanceof alone.
import assert from "node:assert/strict";
import { join } from "node:path";
import { reportError } from "../main.ts";
import { GpuUnavailableError } from "../gpu/device.ts";
import { UsageError } from "../lib/cli/command.ts";
import { DatasetError } from "../lib/data/instructions.ts";
import { ManifestError } from "../lib/manifest/errors.ts";
import { ModelFormatError } from "../lib/model/safetensors/format.ts";
import { BundleWriteError } from "../lib/runner/faults.ts";
import { ReproError } from "../lib/repro/reproduce.ts";
import { CorruptCheckpointError } from "../lib/runner/resume.ts";
import { ResumeRefusedError } from "../lib/runner/resume_guard.ts";
import { RunSetupError } from "../lib/runner/run.ts";
import { UserError } from "../lib/util/user_error.ts";
import { JsonFileError } from "../lib/util/json_file.ts";
import { MissingInputsError } from "../lib/util/missing_inputs.ts";
import { cli } from "./cli_helpers.ts";

/** Runs `fn` with console.error captured; returns what it printed and returned. */
function captureStderr<T>(fn: () => T): { value: T; text: string } {
  const lines: string[] = [];
  const orig = console.error;
  console.error = (...a: unknown[]) => lines.push(a.map(String).join(" "));
  try {
    return { value: fn(), text: lines.join("\n") };
  } finally {
    console.error = orig;
  }
}

Deno.test("every user-facing error class extends UserError and keeps its own name", () => {
  const errors: [Error, string][] = [
    [new GpuUnavailableError("x"), "GpuUnavailableError"],
    [new UsageError("x"), "UsageError"],
    [new DatasetError("x"), "DatasetError"],
    [new ManifestError("f.jsonc", "x"), "ManifestError"],
    [new ModelFormatError("x"), "ModelFormatError"],
    [new BundleWriteError("metrics.jsonl", new Error("disk")), "BundleWriteError"],
    [new ReproError("x"), "ReproError"],
    [new CorruptCheckpointError("x"), "CorruptCheckpointError"],
    [new ResumeRefusedError("x"), "ResumeRefusedError"],
    [new RunSetupError("x"), "RunSetupError"],
    [new JsonFileError("x"), "JsonFileError"],
    [new MissingInputsError(["x"]), "MissingInputsError"],
  ];
  for (const [e, name] of errors) {
    assert.ok(e instanceof UserError, `${name} does not extend UserError`);
    assert.equal(e.name, name);
  }
});

Deno.test("main.ts: a user error is one line, a bug prints its stack and the hint", () => {
  const user = captureStderr(() => reportError(new ModelFormatError("m/config.json: bad")));
  assert.equal(user.value, 1);
  assert.equal(user.text, "error: m/config.json: bad");
  const usage = captureStderr(() => reportError(new UsageError("exp: missing argument")));
  assert.equal(usage.value, 2);
  assert.match(usage.text, /^error: exp: missing argument\n\nselfplay:/);
  const bug = captureStderr(() => reportError(new TypeError("x is undefined")));
  assert.equal(bug.value, 1);
  assert.match(bug.text, /^error: x is undefined\nTypeError: x is undefined\n\s+at /);
  assert.match(bug.text, /an internal error of selfplay.*SELFPLAY_DEBUG=1/s);
});

Deno.test("a run failing on a bad data file gives no --resume hint (resuming cannot help)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cli_errors_" });
  try {
    const data = join(dir, "chats.jsonl");
    await Deno.writeTextFile(data, "{not json\n");
    const r = await cli([
      "exp",
      "sft-tiny",
      "--set",
      `data.jsonl=${data}`,
      "--set",
      "steps=1",
      "--out",
      join(dir, "b"),
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /chats\.jsonl:1: invalid JSON/);
    assert.doesNotMatch(r.stderr, /--resume/);
    assert.doesNotMatch(r.stderr, /SELFPLAY_DEBUG/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("misspelt flags and commands get the nearest spelling; values may start with '-'", async () => {
  const flag = await cli(["exp", "gpu-probe", "--dryrun"]);
  assert.equal(flag.code, 2);
  assert.match(
    flag.stderr,
    /^error: exp: unknown option "--dryrun" \(did you mean "--dry-run"\?\)\n/,
  );
  const cmd = await cli(["verfy", "x"]);
  assert.equal(cmd.code, 2);
  assert.match(cmd.stderr, /^error: unknown command "verfy" \(did you mean "verify"\?\)\n/);
  const help = await cli(["--hepl"]);
  assert.match(help.stderr, /unknown option "--hepl" \(did you mean "--help"\?\)/);
  const tiny = join("experiments", "assets", "tiny");
  const neg = await cli(["model", "tokenize", "--model", tiny, "--text", "-5"]);
  assert.equal(neg.code, 0, neg.stderr);
  assert.equal(JSON.parse(neg.stdout).length, 3, "BOS, '-', '5'");
  const empty = await cli(["model", "tokenize", "--model", tiny, "--text", ""]);
  assert.equal(empty.code, 0, empty.stderr);
  assert.ok(Array.isArray(JSON.parse(empty.stdout)));
});

Deno.test("manifest errors: no contents of a non-JSONC file, numbers out of range, a BOM accepted", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cli_errors_" });
  try {
    const secret = join(dir, "secret.txt");
    await Deno.writeTextFile(secret, "root:x:0:0:hunter2\n");
    const ext = join(dir, "ext.jsonc");
    await Deno.writeTextFile(ext, JSON.stringify({ extends: secret }));
    const r = await cli(["exp", ext, "--dry-run"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /secret\.txt: not a JSONC manifest: it does not start with "\{"/);
    assert.doesNotMatch(r.stderr, /root|hunter2/);

    const big = join(dir, "big.jsonc");
    await Deno.writeTextFile(big, `{"extends": "gpu-probe", "timing": {"repeats": 1e400}}`);
    const b = await cli(["exp", big, "--dry-run"]);
    assert.equal(b.code, 1);
    assert.match(b.stderr, /big\.jsonc: "timing\.repeats": the number is out of range/);
    const s = await cli(["exp", "gpu-probe", "--set", "timing.repeats=1e400", "--dry-run"]);
    assert.equal(s.code, 1);
    assert.match(s.stderr, /--set: timing\.repeats=1e400: the number is out of range/);

    const bom = join(dir, "bom.jsonc");
    await Deno.writeTextFile(bom, `\uFEFF{"extends": "gpu-probe", "timing": {"repeats": 3}}`);
    const m = await cli(["exp", bom, "--dry-run"]);
    assert.equal(m.code, 0, m.stderr);
    assert.equal(JSON.parse(m.stdout).timing.repeats, 3);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("repro --out onto the bundle itself says what to do, not a --force it lacks", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cli_errors_" });
  try {
    const b = join(dir, "probe");
    const small = ["--set", "timing.repeats=1", "--set", "shapes=[[3,5,7]]"];
    const made = await cli(["exp", "gpu-probe", ...small, "--out", b]);
    assert.equal(made.code, 0, made.stderr);
    const r = await cli(["repro", b, "--out", b]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /that is the bundle being reproduced; .*omit --out/);
    assert.doesNotMatch(r.stderr, /--force/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("every missing input of a run is named at once, with download commands and gating", async () => {
  const env = { SELFPLAY_LLAMA_DIR: "", SELFPLAY_REWARD_DIR: "", SELFPLAY_ALPACA_EVAL: "" };
  const r = await cli(["exp", "llama3b-lsp"], env);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^error: 3 inputs are missing:\n/);
  assert.match(r.stderr, /- model: .*SELFPLAY_LLAMA_DIR.*a gated model: accept its licence/);
  assert.match(
    r.stderr,
    /`huggingface-cli download meta-llama\/Llama-3\.2-3B-Instruct --local-dir/,
  );
  assert.match(
    r.stderr,
    /- reward\.model: .*SELFPLAY_REWARD_DIR.*huggingface-cli download Skywork/,
  );
  assert.match(r.stderr, /- eval\.evalSet: .*SELFPLAY_ALPACA_EVAL/);
  assert.doesNotMatch(r.stderr, /Skywork[^\n]*gated/);
});
