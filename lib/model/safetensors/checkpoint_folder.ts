/**
 * HF checkpoint folders: `model.safetensors`, or the shards listed in
 * `model.safetensors.index.json` (validated: no duplicate names, every shard present and holding
 * exactly the tensors the index assigns to it).
 *
 * @module
 */
import { pathExists } from "../../util/fs.ts";
import { isPlainObject } from "../../util/plain_object.ts";
import { ModelFormatError, type SafetensorsFile, type TensorInfo } from "./format.ts";
import { openSafetensors } from "./header.ts";
import { parseJsonStrict } from "./strict_json.ts";

/** Tensors of a checkpoint directory, each with the file holding it. */
export interface Checkpoint {
  dir: string;
  tensors: Map<string, { file: SafetensorsFile; info: TensorInfo }>;
}

/** Name of an unsharded checkpoint file. */
export const SINGLE_FILE = "model.safetensors";
/** Name of the shard index. */
export const INDEX_FILE = "model.safetensors.index.json";

/**
 * Opens a checkpoint directory: `model.safetensors`, else the shards listed in
 * `model.safetensors.index.json`. The index is validated: no duplicate names, every shard exists
 * and holds exactly the tensors the index assigns to it.
 */
export async function openCheckpoint(dir: string): Promise<Checkpoint> {
  const single = `${dir}/${SINGLE_FILE}`;
  const index = `${dir}/${INDEX_FILE}`;
  const tensors: Checkpoint["tensors"] = new Map();
  if (await pathExists(single)) {
    const file = await openSafetensors(single);
    for (const info of file.tensors.values()) tensors.set(info.name, { file, info });
    return { dir, tensors };
  }
  if (!(await pathExists(index))) {
    throw new ModelFormatError(`${dir}: neither ${SINGLE_FILE} nor ${INDEX_FILE} found`);
  }
  let text: string;
  try {
    text = await Deno.readTextFile(index);
  } catch (e) {
    throw new ModelFormatError(`${index}: cannot read (${(e as Error).message})`);
  }
  const json = parseJsonStrict(text, index);
  if (!isPlainObject(json) || !isPlainObject(json.weight_map)) {
    throw new ModelFormatError(`${index}: weight_map missing or not an object`);
  }
  const byShard = new Map<string, string[]>();
  for (const [name, shard] of Object.entries(json.weight_map)) {
    if (typeof shard !== "string" || shard === "" || /[\\/]/.test(shard) || shard.startsWith(".")) {
      throw new ModelFormatError(
        `${index}: weight_map[${JSON.stringify(name)}] = ${JSON.stringify(shard)} is not a ` +
          `file name in this directory`,
      );
    }
    if (!byShard.has(shard)) byShard.set(shard, []);
    byShard.get(shard)!.push(name);
  }
  for (const shard of [...byShard.keys()].sort()) {
    const path = `${dir}/${shard}`;
    if (!(await pathExists(path))) {
      throw new ModelFormatError(
        `${index}: shard ${shard} (holding ${JSON.stringify(byShard.get(shard)![0])}) is missing`,
      );
    }
    const file = await openSafetensors(path);
    const claimed = new Set(byShard.get(shard)!);
    for (const name of claimed) {
      const info = file.tensors.get(name);
      if (!info) {
        throw new ModelFormatError(
          `${index}: tensor ${JSON.stringify(name)} is assigned to ${shard}, which lacks it`,
        );
      }
      tensors.set(name, { file, info });
    }
    for (const name of file.tensors.keys()) {
      if (!claimed.has(name)) {
        throw new ModelFormatError(
          `${path}: tensor ${JSON.stringify(name)} is not assigned to this shard by ${INDEX_FILE}`,
        );
      }
    }
  }
  return { dir, tensors };
}
