/**
 * Bundles inside a bundle. A sweep's members are ordinary bundles that other processes write
 * into the sweep's own folder (`members/<arm>/s<seed>/`). A folder inside a bundle that holds a
 * status.json or bundle.json of the bundle format (regular files) is such a nested bundle: its
 * files are its own, not files of the bundle around it. The outer bundle lists a nested one by
 * its bundle.json alone; that file's sha256 covers the nested root hash, so the outer root hash
 * still covers every byte. `verify` checks a listed nested bundle as a bundle in its own right,
 * the runner neither removes nor lists the files of an unlisted one (a member still running, or
 * left unfinished), and `seal` does not take them for stray files.
 *
 * @module
 */
import { join } from "node:path";
import { BUNDLE_INDEX_SCHEMA, STATUS_SCHEMA } from "./format.ts";
import { type OddEntry, oddKind } from "./no_links.ts";
import { tryReadJson } from "../util/json_file.ts";

/** A bundle folder's entries: its own files, odd entries, and the bundles nested inside it. */
export interface BundleTree {
  /** Sorted '/' paths of the regular files outside every nested bundle. */
  files: string[];
  /** Entries that are neither regular files nor folders (links are never followed). */
  odd: OddEntry[];
  /** Sorted paths of the nested bundles' folders (not descended into). */
  nested: string[];
}

async function regularJson(path: string): Promise<unknown> {
  const info = await Deno.lstat(path).catch(() => null);
  return info?.isFile ? await tryReadJson(path) : undefined;
}

/** True when `dir` holds a status.json or bundle.json that parses as the bundle format's. */
export async function isBundleDir(dir: string): Promise<boolean> {
  const status = await regularJson(join(dir, "status.json"));
  if (status !== undefined && STATUS_SCHEMA.safeParse(status).success) return true;
  const index = await regularJson(join(dir, "bundle.json"));
  return index !== undefined && BUNDLE_INDEX_SCHEMA.safeParse(index).success;
}

/** The entries of the bundle at `dir`, the bundles nested in it set apart (not descended). */
export async function bundleTree(dir: string): Promise<BundleTree> {
  const tree: BundleTree = { files: [], odd: [], nested: [] };
  const walk = async (prefix: string): Promise<void> => {
    for await (const e of Deno.readDir(join(dir, prefix))) {
      const rel = prefix ? `${prefix}/${e.name}` : e.name;
      if (e.isDirectory && !e.isSymlink) {
        if (await isBundleDir(join(dir, rel))) tree.nested.push(rel);
        else await walk(rel);
      } else if (e.isFile && !e.isSymlink) tree.files.push(rel);
      else tree.odd.push({ path: rel, kind: oddKind(await Deno.lstat(join(dir, rel))) });
    }
  };
  await walk("");
  tree.files.sort();
  tree.nested.sort();
  tree.odd.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return tree;
}

/** The nested bundle folder a listed `X/bundle.json` names (null for any other path). */
export function nestedBundleOf(listedPath: string): string | null {
  return listedPath.endsWith("/bundle.json") ? listedPath.slice(0, -"/bundle.json".length) : null;
}
