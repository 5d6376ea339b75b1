/**
 * The record of a bundle's reproductions: `reproductions.jsonl` inside the original bundle, one
 * JSON line per `repro`. It is written after the bundle was sealed, so bundle.json does not list
 * it; `verify` accepts it as the one annex a sealed bundle may gain, and checks that every line
 * is a well-formed record about this very bundle (its root hash). The file is replaced
 * atomically on every append, so a crash leaves the old record or the new one.
 *
 * @module
 */
import { join } from "node:path";
import { z } from "zod";
import { atomicWriteFile } from "../util/atomic_write.ts";

/** The annex's name inside the original bundle. */
export const REPRODUCTIONS_FILE = "reproductions.jsonl";

const HEX64 = z.string().regex(/^[0-9a-f]{64}$/);

/** One reproduction of a bundle. */
export const REPRODUCTION_SCHEMA = z.strictObject({
  /** ISO time the comparison finished. */
  at: z.string(),
  /** reproduced: every deterministic file matched; differs: some did not; failed: no result. */
  verdict: z.enum(["reproduced", "differs", "failed"]),
  /** The original's root hash when it was reproduced: ties the record to these bytes. */
  originalRootHash: HEX64,
  /** The new bundle (as given or resolved from the working directory). */
  bundle: z.string(),
  runId: z.string(),
  status: z.enum(["completed", "failed", "interrupted"]),
  rootHash: HEX64.nullable(),
  sameCode: z.boolean(),
  sameAdapter: z.boolean().nullable(),
  compared: z.number().int().min(0),
  matched: z.number().int().min(0),
  /** Deterministic files that differ, are missing or are extra in the new bundle. */
  mismatches: z.array(z.string()),
  error: z.string().optional(),
});

/** A parsed reproductions.jsonl line. */
export type ReproductionRecord = z.output<typeof REPRODUCTION_SCHEMA>;

async function readText(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/** Appends one record to `<bundleDir>/reproductions.jsonl` (atomic replace). */
export async function appendReproduction(
  bundleDir: string,
  record: ReproductionRecord,
): Promise<void> {
  const path = join(bundleDir, REPRODUCTIONS_FILE);
  const old = (await readText(path)) ?? "";
  const line = JSON.stringify(REPRODUCTION_SCHEMA.parse(record)) + "\n";
  await atomicWriteFile(path, old + line);
}

/** The records of a bundle (empty when it was never reproduced); throws on a bad line. */
export async function readReproductions(bundleDir: string): Promise<ReproductionRecord[]> {
  const text = await readText(join(bundleDir, REPRODUCTIONS_FILE));
  if (text === null) return [];
  const problems = await checkReproductionsText(text, null);
  if (problems.length) throw new Error(problems[0]);
  return text.split("\n").filter((l) => l !== "").map((l) =>
    REPRODUCTION_SCHEMA.parse(JSON.parse(l))
  );
}

function checkReproductionsText(text: string, rootHash: string | null): string[] {
  const problems: string[] = [];
  if (text !== "" && !text.endsWith("\n")) {
    problems.push(`${REPRODUCTIONS_FILE}: the last line is not terminated`);
  }
  text.split("\n").forEach((line, i) => {
    if (line === "") return;
    const where = `${REPRODUCTIONS_FILE}:${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      problems.push(`${where}: not valid JSON`);
      return;
    }
    const r = REPRODUCTION_SCHEMA.safeParse(value);
    if (!r.success) {
      const what = r.error.issues.map((s) => `${s.path.join(".") || "top level"}: ${s.message}`);
      problems.push(`${where}: not a reproduction record (${what.join("; ")})`);
    } else if (rootHash !== null && r.data.originalRootHash !== rootHash) {
      problems.push(
        `${where}: records a reproduction of root ${r.data.originalRootHash}, not of this ` +
          `bundle (${rootHash})`,
      );
    }
  });
  return problems;
}

/**
 * Problems with a sealed bundle's reproductions annex (none when it has none): for `verify`.
 * `rootHash` is the root hash listed in its bundle.json.
 */
export async function checkReproductions(bundleDir: string, rootHash: string): Promise<string[]> {
  const text = await readText(join(bundleDir, REPRODUCTIONS_FILE));
  return text === null ? [] : checkReproductionsText(text, rootHash);
}
