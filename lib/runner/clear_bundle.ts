/**
 * `--force`: start a run over in a folder that holds an earlier bundle, removing only what that
 * bundle's run wrote. Anything else (a file the user put beside a copied bundle, a link, a
 * folder of their own) makes it refuse, naming what it found, so nothing of theirs is lost.
 *
 * @module
 */
import { join } from "node:path";
import { isTempFile } from "../util/atomic_write.ts";
import { BUNDLE_INDEX_SCHEMA, STATUS_SCHEMA } from "../bundle/format.ts";
import { scanTree } from "../bundle/no_links.ts";
import { REPRODUCTIONS_FILE } from "../bundle/reproductions.ts";
import { UserError } from "../util/user_error.ts";

async function readJson(path: string): Promise<unknown> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch {
    return undefined;
  }
}

/**
 * Whether an unlisted file is still the run's own: a temporary file of an interrupted atomic
 * write, or a file of a checkpoint folder that a kill left before status.json recorded it.
 */
function isRunLeftover(rel: string): boolean {
  return isTempFile(rel) || /^checkpoints\/step-\d+\/[^/]+$/.test(rel);
}

/**
 * The files under `dir` that the earlier run did not write: neither listed in its bundle.json
 * or status.json, nor the runner's own records and leftovers. Links and special files always
 * count.
 */
export async function foreignFiles(dir: string): Promise<string[]> {
  const own = new Set(["bundle.json", "status.json", REPRODUCTIONS_FILE]);
  const index = BUNDLE_INDEX_SCHEMA.safeParse(await readJson(join(dir, "bundle.json")));
  if (index.success) { for (const f of index.data.files) own.add(f.path); }
  const status = STATUS_SCHEMA.safeParse(await readJson(join(dir, "status.json")));
  if (status.success) { for (const rel of Object.keys(status.data.files ?? {})) own.add(rel); }
  const tree = await scanTree(dir);
  const foreign = tree.files.filter((rel) => !own.has(rel) && !isRunLeftover(rel));
  foreign.push(...tree.odd.map((o) => `${o.path} (${o.kind})`));
  return foreign.sort();
}

/**
 * Removes the earlier run's files from `dir` (and the folders that this leaves empty), after
 * checking that nothing else is there; throws a {@link UserError} naming the other files.
 */
export async function clearBundleDir(dir: string, shown: string): Promise<void> {
  const foreign = await foreignFiles(dir);
  if (foreign.length > 0) {
    const named = foreign.slice(0, 5).join(", ") +
      (foreign.length > 5 ? ` and ${foreign.length - 5} more` : "");
    throw new UserError(
      `${shown} holds files its run did not write (${named}); --force removes only a bundle's ` +
        `own files: move them away, or choose another --out`,
    );
  }
  const { files } = await scanTree(dir);
  for (const rel of files) await Deno.remove(join(dir, rel));
  await removeEmptyFolders(dir, "");
}

/** Removes the empty folders under `dir/rel`, deepest first (never `dir` itself). */
async function removeEmptyFolders(dir: string, rel: string): Promise<void> {
  for await (const e of Deno.readDir(join(dir, rel))) {
    if (e.isDirectory && !e.isSymlink) {
      const sub = rel ? `${rel}/${e.name}` : e.name;
      await removeEmptyFolders(dir, sub);
      await Deno.remove(join(dir, sub)).catch(() => {}); // fails when not empty: kept
    }
  }
}
