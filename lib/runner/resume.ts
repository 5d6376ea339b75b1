/**
 * What the runner does before a resumable kind continues an unfinished bundle, whatever the
 * kind: find the latest complete checkpoint (one with SHA256SUMS; a folder a crash left without
 * it is ignored, and the resumed run writes it again), verify it byte for byte, and cut every
 * registered JSONL file back to its step, so no metrics or samples line is written twice and a
 * torn last line (a process killed mid-append) is dropped. The kind then restores weights,
 * optimizer, RNG and data position from that checkpoint.
 *
 * @module
 */
import { UserError } from "../util/user_error.ts";
import { join } from "node:path";
import type { BundleWriter } from "../bundle/writer.ts";
import { latestCheckpoint, verifyCheckpoint } from "../train/checkpoint.ts";
import { CHECKPOINTS_DIR } from "../train/run_checkpoints.ts";
import { pathExists } from "../util/fs.ts";
import { readJsonFile } from "../util/json_file.ts";

/** The keys a JSONL line may use for its iteration; lines with none of them are kept. */
const STEP_KEYS = ["step", "iter", "iteration"] as const;

/** Where a resumed run continues from. */
export interface ResumePoint {
  /** Bundle-relative path of the latest complete checkpoint, or null (none, or no checkpoints). */
  checkpoint: string | null;
  /** Its step (0 without one). */
  step: number;
  /** True when the bundle has a checkpoints/ folder, i.e. the kind checkpoints. */
  checkpointing: boolean;
  /** JSONL files cut back to `step`, with the number of lines dropped. */
  truncated: Record<string, number>;
}

/** A checkpoint on disk that does not match its SHA256SUMS (the message names the file). */
export class CorruptCheckpointError extends UserError {
  override name = "CorruptCheckpointError";
}

/** The iteration a parsed JSONL line belongs to, or null when it carries none. */
function stepOf(row: unknown): number | null {
  if (typeof row !== "object" || row === null) return null;
  for (const k of STEP_KEYS) {
    const v = (row as Record<string, unknown>)[k];
    if (typeof v === "number") return v;
  }
  return null;
}

/**
 * Keeps the lines of a JSONL text whose step is at most `step` (lines without a step are kept);
 * a torn or unparsable line (a write cut short) is dropped. Returns the text and lines dropped.
 */
export function truncateJsonlText(text: string, step: number): { text: string; dropped: number } {
  const kept: string[] = [];
  let dropped = 0;
  const lines = text.split("\n");
  // Only newline-terminated lines were written whole; a torn tail is dropped.
  if (lines.pop() !== "") dropped++;
  for (const line of lines) {
    if (line === "") continue;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch {
      dropped++;
      continue;
    }
    const s = stepOf(row);
    if (s !== null && s > step) dropped++;
    else kept.push(line + "\n");
  }
  return { text: kept.join(""), dropped };
}

/**
 * Prepares the unfinished bundle in `writer.dir` (its files already registered again) for its
 * kind to continue: see the module doc. Throws {@link CorruptCheckpointError} naming the file
 * when the latest complete checkpoint does not match its SHA256SUMS.
 */
export async function prepareResume(
  writer: BundleWriter,
  log: (msg: string) => void = () => {},
): Promise<ResumePoint> {
  const dir = writer.dir;
  const checkpointing = await pathExists(join(dir, CHECKPOINTS_DIR));
  const latest = checkpointing ? await latestCheckpoint(join(dir, CHECKPOINTS_DIR)) : null;
  const checkpoint = latest ? `${CHECKPOINTS_DIR}/${latest.split("/").pop()}` : null;
  let step = 0;
  if (checkpoint) {
    try {
      await verifyCheckpoint(join(dir, checkpoint));
    } catch (e) {
      throw new CorruptCheckpointError(
        `cannot resume: the latest checkpoint is corrupt: ${(e as Error).message}. ` +
          `Delete ${join(dir, checkpoint)} to resume from an earlier checkpoint, or pass ` +
          `--force to start the run over`,
      );
    }
    const statePath = join(dir, checkpoint, "state.json");
    const state = await readJsonFile(statePath, (m) => new CorruptCheckpointError(m)) as {
      step?: unknown;
    };
    if (!Number.isInteger(state?.step)) {
      throw new CorruptCheckpointError(`${statePath}: "step" is not an integer`);
    }
    step = state.step as number;
  }

  await settleUnregistered(writer, checkpoint, log);

  // Only kinds that checkpoint are cut back: others (a kind that resumes from its own metrics)
  // keep their lines.
  const truncated: Record<string, number> = {};
  if (checkpointing) {
    for (const [rel, opts] of [...writer.files]) {
      if (!rel.endsWith(".jsonl")) continue;
      let text: string;
      try {
        text = await Deno.readTextFile(join(dir, rel));
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) continue;
        throw e;
      }
      const cut = truncateJsonlText(text, step);
      if (cut.dropped === 0) continue;
      await writer.writeFile(rel, cut.text, opts);
      truncated[rel] = cut.dropped;
      log(`resume: ${rel} cut back to step ${step} (${cut.dropped} later lines dropped)`);
    }
  }
  return { checkpoint, step, checkpointing, truncated };
}

/** Files the runner itself writes (and registers) around a resume: never a crash leftover. */
const RUNNER_FILES = new Set([
  "bundle.json",
  "status.json",
  "manifest.json",
  "provenance.json",
  "log.txt",
  "resumes.jsonl",
  "reproductions.jsonl",
]);

async function* walk(dir: string, prefix = ""): AsyncGenerator<string> {
  for await (const e of Deno.readDir(join(dir, prefix))) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory) yield* walk(dir, rel);
    else yield rel;
  }
}

/**
 * Files on disk that status.json does not list: a process killed between writing a file and
 * recording it in status.json leaves one behind. Inside the verified checkpoint (its SHA256SUMS,
 * written last, is typically the one) they are adopted as deterministic checkpoint files;
 * anywhere else they are removed, and the resumed run writes again what it needs.
 */
async function settleUnregistered(
  writer: BundleWriter,
  checkpoint: string | null,
  log: (msg: string) => void,
): Promise<void> {
  const strays: string[] = [];
  for await (const rel of walk(writer.dir)) {
    if (!RUNNER_FILES.has(rel) && !writer.files.has(rel)) strays.push(rel);
  }
  for (const rel of strays.sort()) {
    if (checkpoint && rel.startsWith(`${checkpoint}/`)) {
      writer.register(rel, { deterministic: true });
      log(`resume: adopted ${rel}, written before the crash but not yet recorded`);
    } else {
      await Deno.remove(join(writer.dir, rel));
      log(`resume: removed ${rel}, left unrecorded by the crash`);
    }
  }
}

/**
 * The sentence a failed run's message ends with when it can be resumed: where the last complete
 * checkpoint is (or that there is none) and the command that continues.
 */
export async function resumeHint(bundleDir: string): Promise<string> {
  const root = join(bundleDir, CHECKPOINTS_DIR);
  let latest: string | null = null;
  try {
    latest = await latestCheckpoint(root);
  } catch { /* an unreadable folder: as if there were none */ }
  if (latest) {
    return `the last complete checkpoint is ${CHECKPOINTS_DIR}/${
      latest.split("/").pop()
    }; continue the run with --resume`;
  }
  return (await pathExists(root))
    ? "no checkpoint was complete yet; --resume starts the run from the beginning"
    : "continue the run with --resume";
}
