// A tiny random Llama with the tiny world's tokenizer: the model the fast RL tests play with.
import { join } from "node:path";
import { tinyTestConfig, writeRandomModel } from "../lib/model/random_model.ts";
import { TINY_VOCAB_SIZE, writeTinyTokenizer } from "../lib/tinyworld/tokenizer.ts";

/** Writes the model into `dir/model` and returns that folder. */
export async function tinyRlModel(dir: string): Promise<string> {
  const modelDir = join(dir, "model");
  await writeRandomModel(
    modelDir,
    tinyTestConfig({
      vocabSize: TINY_VOCAB_SIZE,
      maxPositionEmbeddings: 256,
      bosTokenId: 1,
      eosTokenIds: [2],
      padTokenId: 0,
    }),
    { dtype: "F32", seed: 7, std: 0.5 },
  );
  await writeTinyTokenizer(modelDir);
  return modelDir;
}
