/**
 * `verify`: recompute every listed file's size and sha256 and the root hash of a bundle, and
 * find files that are on disk but not listed.
 *
 * @module
 */
import { join } from "node:path";
import {
  BUNDLE_INDEX_SCHEMA,
  type BundleIndex,
  checkRelPath,
  serializeIndex,
  STATUS_SCHEMA,
} from "./format.ts";
import { hashFile } from "../util/hash_file.ts";
import { tryReadJson } from "../util/json_file.ts";
import { rootHashOf } from "./hash.ts";
import { linkOnPath, scanTree } from "./no_links.ts";
import { checkReproductions, REPRODUCTIONS_FILE } from "./reproductions.ts";

/** What {@link verifyBundle} found. */
export interface VerifyResult {
  /** True when there are no problems. */
  ok: boolean;
  /** One line per problem, each naming the file. */
  problems: string[];
  /** The parsed index, when bundle.json could be read. */
  index: BundleIndex | null;
  /** Number of listed files. */
  fileCount: number;
  /** The recomputed root hash ("" when bundle.json could not be read). */
  rootHash: string;
}

async function readStatus(dir: string): Promise<string> {
  const json = await tryReadJson(join(dir, "status.json"));
  if (json === undefined) return "missing";
  const s = STATUS_SCHEMA.safeParse(json);
  return s.success ? s.data.status : "unreadable";
}

/** Checks a bundle directory against its bundle.json. Never throws for a bad bundle. */
export async function verifyBundle(dir: string): Promise<VerifyResult> {
  const fail = (problems: string[]): VerifyResult => ({
    ok: false,
    problems,
    index: null,
    fileCount: 0,
    rootHash: "",
  });
  try {
    if (!(await Deno.stat(dir)).isDirectory) return fail([`${dir} is not a directory`]);
  } catch {
    return fail([`${dir}: no such directory`]);
  }
  let text: string;
  try {
    text = await Deno.readTextFile(join(dir, "bundle.json"));
  } catch {
    return fail([
      `bundle.json: missing; the run never finished (status.json: ${await readStatus(dir)})`,
    ]);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    return fail([`bundle.json: not valid JSON (${(e as Error).message})`]);
  }
  const v = BUNDLE_INDEX_SCHEMA.safeParse(parsed);
  if (!v.success) {
    const what = v.error.issues.map((i) => `${i.path.join(".") || "top level"}: ${i.message}`);
    return fail([`bundle.json: not a ${"selfplay"} bundle index (${what.join("; ")})`]);
  }
  const index = v.data as BundleIndex;
  const problems: string[] = [];
  if (serializeIndex(index) !== text) {
    problems.push("bundle.json: its bytes differ from the canonical form of its content (edited?)");
  }
  const listed = new Set<string>();
  const recomputed = [];
  for (const f of index.files) {
    const bad = checkRelPath(f.path);
    if (bad) {
      problems.push(`${f.path}: listed path ${bad}`);
      continue;
    }
    if (f.path === "bundle.json") problems.push("bundle.json: lists itself");
    if (listed.has(f.path)) problems.push(`${f.path}: listed twice`);
    listed.add(f.path);
    // Never hash through a link: a listed file replaced by a symlink is not the bundle's file.
    const link = await linkOnPath(dir, f.path).catch((e) => `unreadable (${e.message})`);
    if (link) {
      problems.push(`${f.path}: listed, but ${link} (bundles hold only regular files)`);
      continue;
    }
    let got: { size: number; sha256: string };
    try {
      got = await hashFile(join(dir, f.path));
    } catch {
      problems.push(`${f.path}: listed but missing`);
      continue;
    }
    if (got.size !== f.size) problems.push(`${f.path}: size ${got.size}, listed ${f.size}`);
    if (got.sha256 !== f.sha256) {
      problems.push(`${f.path}: sha256 ${got.sha256}, listed ${f.sha256}`);
    }
    recomputed.push({ path: f.path, sha256: got.sha256 });
  }
  const root = rootHashOf(index.files);
  if (root !== index.rootHash) {
    problems.push(`bundle.json: rootHash ${index.rootHash} does not match its file list (${root})`);
  }
  const tree = await scanTree(dir);
  for (const rel of tree.files) {
    // reproductions.jsonl is appended after sealing (by repro); it is checked on its own.
    if (rel !== "bundle.json" && rel !== REPRODUCTIONS_FILE && !listed.has(rel)) {
      problems.push(`${rel}: on disk but not listed in bundle.json`);
    }
  }
  for (const odd of tree.odd) {
    if (!listed.has(odd.path)) {
      problems.push(`${odd.path}: ${odd.kind} in the bundle (bundles hold only regular files)`);
    }
  }
  if (!listed.has(REPRODUCTIONS_FILE)) {
    problems.push(...await checkReproductions(dir, index.rootHash));
  }
  // status.json is hashed, so checking the index against it protects the index's own fields.
  try {
    const st = STATUS_SCHEMA.parse(JSON.parse(await Deno.readTextFile(join(dir, "status.json"))));
    if (st.status !== index.status) {
      problems.push(`bundle.json: status "${index.status}" but status.json says "${st.status}"`);
    }
    if (st.experiment !== index.experiment || st.runId !== index.runId) {
      problems.push(
        `bundle.json: experiment/runId ${index.experiment}/${index.runId} but status.json says ` +
          `${st.experiment}/${st.runId}`,
      );
    }
  } catch (e) {
    if (listed.has("status.json")) {
      problems.push(`status.json: unreadable (${(e as Error).message.split("\n")[0]})`);
    } else problems.push("status.json: not listed in bundle.json");
  }
  return {
    ok: problems.length === 0,
    problems: [...new Set(problems)],
    index,
    fileCount: index.files.length,
    rootHash: rootHashOf(recomputed.length === index.files.length ? recomputed : index.files),
  };
}
