import assert from "node:assert/strict";
import { getGpu } from "../gpu/device.ts";
import { tinyTestConfig, writeRandomModel } from "../lib/model/random_model.ts";
import { loadModelSource, ModelSourceSchema } from "../lib/data/model_source.ts";

Deno.test("loadModelSource: frozen copies follow the storage knob (auto, f32, bf16)", async () => {
  const gpu = await getGpu();
  const dir = await Deno.makeTempDir({ prefix: "rl_sources_storage_" });
  try {
    await writeRandomModel(dir, tinyTestConfig(), { dtype: "BF16", seed: 3 });
    const fromDir = ModelSourceSchema.parse({ dir });
    const storageOf = async (src: typeof fromDir, storage?: "auto" | "f32" | "bf16") =>
      (await loadModelSource(gpu, src, "reference", storage)).model.storage;
    assert.equal(await storageOf(fromDir), "f32", "a model to train stays f32");
    assert.equal(await storageOf(fromDir, "auto"), "bf16", "a BF16 checkpoint stays 16-bit");
    assert.equal(await storageOf(fromDir, "f32"), "f32");
    const synthetic = ModelSourceSchema.parse({ synthetic: dir, tokenizer: dir });
    assert.equal(await storageOf(synthetic, "auto"), "f32", "auto never rounds f32 draws");
    assert.equal(await storageOf(synthetic, "bf16"), "bf16");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
