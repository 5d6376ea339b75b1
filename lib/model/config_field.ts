/**
 * A Llama config as a manifest field: given inline (HF config.json fields) or as a path (a
 * config.json file or a folder holding one). Used where a run starts from synthetic weights
 * (benchmarks, SFT from scratch).
 *
 * @module
 */
import { projectPath } from "../util/project_path.ts";
import { z } from "zod";
import { readJsonFile } from "../util/json_file.ts";
import { type LlamaConfig, loadLlamaConfig, parseLlamaConfig } from "./config.ts";

/** Manifest field: a path (file or folder) or an inline config.json object. */
export const ModelConfigField = z.union([
  z.string().min(1),
  z.record(z.string(), z.unknown()),
]);

/** Resolves the {@link ModelConfigField}; errors name the file or `manifest: <field>`. */
export async function resolveModelConfig(
  field: z.output<typeof ModelConfigField>,
  fieldName: string,
): Promise<LlamaConfig> {
  if (typeof field !== "string") return parseLlamaConfig(field, `manifest: ${fieldName}`);
  const path = projectPath(field);
  let isDir: boolean;
  try {
    isDir = (await Deno.stat(path)).isDirectory;
  } catch (e) {
    throw new Error(`${fieldName}: cannot read ${path} (${(e as Error).message})`);
  }
  if (isDir) return await loadLlamaConfig(path);
  return parseLlamaConfig(await readJsonFile(path), path);
}
