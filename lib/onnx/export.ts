/**
 * Writes an HF Llama (a folder, or weights already on the host) as one ONNX file, plus an
 * external data file when the weights would not fit in one protobuf message.
 *
 * The graph is llama_graph.ts's; this module fills in the weights (read one tensor at a time,
 * transposed for MatMul, stored f32 or f16) and writes the files atomically. The bytes depend
 * only on the config, the weights and the options, never on the time or the paths, so the same
 * checkpoint always exports to the same file.
 *
 * External data follows ONNX's convention: each weight's TensorProto says `data_location:
 * EXTERNAL` with `location` (a file beside the model, `<name>_data`, as Optimum writes
 * `model.onnx_data`), `offset` and `length`; offsets are 4096-byte aligned.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import {
  checkTensors,
  type LlamaConfig,
  loadLlamaConfig,
  toHfConfigJson,
} from "../model/config.ts";
import { openCheckpoint } from "../model/safetensors/checkpoint_folder.ts";
import { f32ToF16 } from "../model/safetensors/dtype.ts";
import { ModelFormatError } from "../model/safetensors/format.ts";
import { readTensorF32 } from "../model/safetensors/read.ts";
import { atomicWriteFile, atomicWriteWith } from "../util/atomic_write.ts";
import { writeAll } from "../util/byte_sink.ts";
import { pathExists } from "../util/fs.ts";
import { UserError } from "../util/user_error.ts";
import { ElemType } from "./graph.ts";
import {
  buildLlamaGraph,
  IR_VERSION,
  type OnnxWeightDtype,
  OPSET,
  type WeightInit,
} from "./llama_graph.ts";
import { encodeModel, type ModelProto } from "./onnx_proto.ts";

/** Weights above this many bytes go to an external data file (protobuf's cap is 2 GiB). */
export const EXTERNAL_DATA_THRESHOLD = 2_000_000_000;
/** Alignment of each tensor in the external data file. */
const EXTERNAL_ALIGN = 4096;

/** Produces an HF tensor's values as f32, in its HF shape (row-major). */
export type TensorReader = (name: string) => Promise<Float32Array>;

/** Options of {@link exportLlamaOnnx}. */
export interface OnnxExportOptions {
  /** How weight matrices are stored (default "f32"; norm weights always stay f32). */
  dtype?: OnnxWeightDtype;
  /** true/false force external data on/off; "auto" (default): on when the weights exceed 2 GB. */
  externalData?: boolean | "auto";
  /** Replace existing files at the destination (default: refuse). */
  overwrite?: boolean;
  /** Called after each weight is written. */
  onWeight?: (name: string, index: number, count: number) => void;
}

/** What {@link exportLlamaOnnx} wrote. */
export interface OnnxExportResult {
  path: string;
  /** The external data file, or null when every weight is inside the model file. */
  dataPath: string | null;
  bytes: number;
  dataBytes: number;
  architecture: LlamaConfig["architecture"];
  dtype: OnnxWeightDtype;
  /** Number of weight initializers and of parameters they hold. */
  weights: number;
  parameters: number;
}

const numelOf = (dims: number[]) => dims.reduce((a, b) => a * b, 1);

/** Bytes a weight takes in the file. */
function weightBytes(w: WeightInit): number {
  return numelOf(w.dims) * (w.dtype === "f16" ? 2 : 4);
}

/** [rows, cols] row-major to [cols, rows], in cache-sized tiles. */
function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  const TILE = 64;
  for (let r0 = 0; r0 < rows; r0 += TILE) {
    const r1 = Math.min(r0 + TILE, rows);
    for (let c0 = 0; c0 < cols; c0 += TILE) {
      const c1 = Math.min(c0 + TILE, cols);
      for (let r = r0; r < r1; r++) {
        const src = r * cols;
        for (let c = c0; c < c1; c++) out[c * rows + r] = a[src + c];
      }
    }
  }
  return out;
}

/** The stored bytes of one weight: read, transposed when asked, narrowed to f16 when asked. */
async function weightData(w: WeightInit, read: TensorReader): Promise<Uint8Array> {
  const values = await read(w.source);
  if (values.length !== numelOf(w.sourceShape)) {
    throw new ModelFormatError(
      `onnx export: tensor ${w.source} has ${values.length} values, its shape ` +
        `${JSON.stringify(w.sourceShape)} needs ${numelOf(w.sourceShape)}`,
    );
  }
  const laid = w.transpose ? transpose(values, w.sourceShape[0], w.sourceShape[1]) : values;
  const stored = w.dtype === "f16" ? f32ToF16(laid) : laid;
  return new Uint8Array(stored.buffer, stored.byteOffset, stored.byteLength);
}

async function refuseExisting(path: string, overwrite: boolean): Promise<void> {
  if (!overwrite && (await pathExists(path))) {
    throw new UserError(
      `${path} already exists; refusing to replace it (choose another path, or --force to replace it)`,
    );
  }
}

/**
 * Exports `config` with the weights `read` gives as an ONNX model at `out` (see the module
 * doc). Existing files are refused unless `overwrite`.
 */
export async function exportLlamaOnnx(
  config: LlamaConfig,
  read: TensorReader,
  out: string,
  opts: OnnxExportOptions = {},
): Promise<OnnxExportResult> {
  const dtype = opts.dtype ?? "f32";
  const { graph, weights } = buildLlamaGraph(config, dtype);
  const totalWeightBytes = weights.reduce((a, w) => a + weightBytes(w), 0);
  const external = opts.externalData === undefined || opts.externalData === "auto"
    ? totalWeightBytes > EXTERNAL_DATA_THRESHOLD
    : opts.externalData;
  const dataName = `${basename(out)}_data`;
  const dataPath = external ? join(dirname(out), dataName) : null;
  await refuseExisting(out, opts.overwrite ?? false);
  if (dataPath) await refuseExisting(dataPath, opts.overwrite ?? false);

  const elemType = (w: WeightInit) => (w.dtype === "f16" ? ElemType.FLOAT16 : ElemType.FLOAT);
  let dataBytes = 0;
  if (dataPath) {
    await atomicWriteWith(dataPath, async (f) => {
      for (let i = 0; i < weights.length; i++) {
        const w = weights[i];
        const pad = (EXTERNAL_ALIGN - (dataBytes % EXTERNAL_ALIGN)) % EXTERNAL_ALIGN;
        if (pad > 0) await writeAll(f, new Uint8Array(pad));
        dataBytes += pad;
        const bytes = await weightData(w, read);
        await writeAll(f, bytes);
        graph.initializers.push({
          name: w.name,
          dataType: elemType(w),
          dims: w.dims,
          dataLocation: 1, // TensorProto.DataLocation.EXTERNAL
          externalData: [
            { key: "location", value: dataName },
            { key: "offset", value: String(dataBytes) },
            { key: "length", value: String(bytes.length) },
          ],
        });
        dataBytes += bytes.length;
        opts.onWeight?.(w.source, i, weights.length);
      }
    });
  } else {
    for (let i = 0; i < weights.length; i++) {
      const w = weights[i];
      graph.initializers.push({
        name: w.name,
        dataType: elemType(w),
        dims: w.dims,
        rawData: await weightData(w, read),
      });
      opts.onWeight?.(w.source, i, weights.length);
    }
  }

  const model: ModelProto = {
    irVersion: IR_VERSION,
    opsetImport: [{ domain: "", version: OPSET }],
    producerName: "selfplay",
    producerVersion: "1",
    docString: `${config.architecture} (HF transformers semantics), weights ${dtype}`,
    graph: graph.toGraph(config.architecture),
    metadataProps: [
      { key: "architecture", value: config.architecture },
      { key: "hf_config", value: JSON.stringify(toHfConfigJson(config)) },
    ],
  };
  const bytes = encodeModel(model);
  await atomicWriteFile(out, bytes);
  return {
    path: out,
    dataPath,
    bytes: bytes.length,
    dataBytes,
    architecture: config.architecture,
    dtype,
    weights: weights.length,
    parameters: weights.reduce((a, w) => a + numelOf(w.dims), 0),
  };
}

/**
 * Exports the HF model folder `dir` (config.json and safetensors weights, F32, F16 or BF16, one
 * file or shards: any checkpoint a run writes). The config and the tensors are validated first;
 * errors name the file and the field or tensor.
 */
export async function exportCheckpointOnnx(
  dir: string,
  out: string,
  opts: OnnxExportOptions = {},
): Promise<OnnxExportResult> {
  const config = await loadLlamaConfig(dir);
  const ckpt = await openCheckpoint(dir);
  checkTensors(config, ckpt);
  const read: TensorReader = (name) => {
    const t = ckpt.tensors.get(name);
    if (!t) throw new ModelFormatError(`${dir}: tensor ${name} is missing`);
    return readTensorF32(t.file, name);
  };
  return await exportLlamaOnnx(config, read, out, opts);
}
