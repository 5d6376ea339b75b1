/**
 * Test fixtures for reproducibility and fault tests: a frozen copy of the program (so the code
 * version, which enters every run id, does not change while other work goes on in the
 * checkout), a tiny sft experiment, and helpers to run the CLI of that copy.
 */
import { join } from "node:path";
import { ROOT } from "./cli_helpers.ts";
import { tinyTestConfig, writeRandomModel } from "../lib/model/random_model.ts";
import { TINY_VOCAB_SIZE, writeTinyTokenizer } from "../lib/tinyworld/tokenizer.ts";
import { hashFile } from "../lib/util/hash_file.ts";
import type { LlamaConfig } from "../lib/model/config.ts";

/** Copies the program (main.ts, deno.json, deno.lock, lib, gpu) into `dir`; links node_modules. */
export async function snapshotProgram(dir: string): Promise<string> {
  const root = join(dir, "program");
  await Deno.mkdir(root, { recursive: true });
  const copy = async (rel: string) => {
    const st = await Deno.stat(join(ROOT, rel));
    if (st.isDirectory) {
      await Deno.mkdir(join(root, rel), { recursive: true });
      for await (const e of Deno.readDir(join(ROOT, rel))) await copy(join(rel, e.name));
    } else if (st.isFile) await Deno.copyFile(join(ROOT, rel), join(root, rel));
  };
  for (const rel of ["main.ts", "deno.json", "deno.lock", "lib", "gpu"]) await copy(rel);
  await Deno.mkdir(join(root, "experiments"));
  await Deno.symlink(join(ROOT, "node_modules"), join(root, "node_modules"));
  return root;
}

const EXAMPLES = [
  ["abc", "cba"],
  ["hello", "olleh"],
  ["xy", "yx"],
  ["dog", "god"],
  ["tree", "eert"],
  ["sun", "nus"],
].map(([q, a]) =>
  JSON.stringify({ messages: [{ role: "user", content: q }, { role: "assistant", content: a }] })
).join("\n") + "\n";

/** Writes a tiny model, data and an sft manifest under `dir`; returns the manifest path. */
export async function writeTinySft(
  dir: string,
  opts: { steps: number; checkpointEvery: number; name?: string; config?: Partial<LlamaConfig> },
): Promise<string> {
  const model = join(dir, "model");
  await writeRandomModel(model, tinyTestConfig({ ...opts.config, vocabSize: TINY_VOCAB_SIZE }), {
    dtype: "F32",
    seed: 3,
  });
  await writeTinyTokenizer(model);
  await Deno.writeTextFile(join(dir, "data.jsonl"), EXAMPLES);
  const manifest = join(dir, `${opts.name ?? "tiny-sft"}.jsonc`);
  await Deno.writeTextFile(
    manifest,
    JSON.stringify({
      kind: "sft",
      description: "reverse a few words (reproducibility fixture)",
      seed: 11,
      model,
      data: { jsonl: join(dir, "data.jsonl") },
      steps: opts.steps,
      batchSize: 2,
      seqLen: 20,
      shuffle: true,
      optimizer: { lr: 1e-2 },
      checkpointEvery: opts.checkpointEvery,
    }),
  );
  return manifest;
}

/** What a CLI run of the frozen program returned. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function cliCommand(program: string, args: string[]): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(program, "main.ts"), ...args],
    cwd: program,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  });
}

const dec = new TextDecoder();
const clean = (b: Uint8Array) => dec.decode(b);

/** Runs the frozen program's CLI to completion. */
export async function runCli(program: string, args: string[]): Promise<CliResult> {
  const out = await cliCommand(program, args).output();
  return { code: out.code, stdout: clean(out.stdout), stderr: clean(out.stderr) };
}

/** Starts the frozen program's CLI; the caller kills or awaits it. */
export function spawnCli(program: string, args: string[]): Deno.ChildProcess {
  return cliCommand(program, args).spawn();
}

/** Resolves when `path` exists (polls every 20 ms); rejects after `timeoutMs`. */
export async function waitForFile(path: string, timeoutMs = 120_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      await Deno.stat(path);
      return;
    } catch { /* not yet */ }
    if (Date.now() > end) throw new Error(`${path} did not appear within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** sha256 of a file. */
export async function sha(path: string): Promise<string> {
  return (await hashFile(path)).sha256;
}

/** The deterministic `path -> sha256` entries of a bundle's bundle.json. */
export async function deterministicFiles(bundleDir: string): Promise<Record<string, string>> {
  const index = JSON.parse(await Deno.readTextFile(join(bundleDir, "bundle.json")));
  const out: Record<string, string> = {};
  for (const f of index.files) if (f.deterministic) out[f.path] = f.sha256;
  return out;
}
