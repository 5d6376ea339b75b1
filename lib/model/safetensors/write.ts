/**
 * Writing safetensors files with deterministic bytes (tensors in sorted name order, packed back
 * to back, the header padded so the data starts 8-byte aligned), to a file atomically or
 * streamed into any byte sink; lazy tensors are produced one at a time as the writer reaches them.
 *
 * @module
 */
import { atomicWriteWith } from "../../util/atomic_write.ts";
import { type ByteSink, writeAll } from "../../util/byte_sink.ts";
import { f32ToBf16, f32ToF16 } from "./dtype.ts";
import { type Dtype, DTYPE_BYTES, ModelFormatError } from "./format.ts";

/** Tensor data: f32 values (narrowed to the tensor's dtype) or raw 16/8-bit storage. */
export type TensorData = Float32Array | Uint16Array | Uint8Array;

/** A tensor to write: f32 data is narrowed to `dtype`; u16/u8 data are taken as raw bits. */
export interface TensorToWrite {
  name: string;
  dtype: Dtype;
  shape: number[];
  data: TensorData;
}

/**
 * A tensor whose data is produced only when the writer reaches it (e.g. read back from the GPU),
 * so a streamed file never holds more than one tensor in host memory. The header needs only
 * names, dtypes and shapes; the produced data is checked against them like {@link TensorToWrite}.
 */
export interface LazyTensorToWrite {
  name: string;
  dtype: Dtype;
  shape: number[];
  data: () => TensorData | Promise<TensorData>;
}

/** Checks a tensor's dtype and shape; returns its size in the file. */
function tensorSize(t: { name: string; dtype: Dtype; shape: number[] }, where: string): number {
  if (!(t.dtype in DTYPE_BYTES)) {
    throw new ModelFormatError(`${where}: unsupported dtype ${t.dtype}`);
  }
  let numel = 1;
  for (const d of t.shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new ModelFormatError(`${where}: bad shape ${JSON.stringify(t.shape)}`);
    }
    numel *= d;
  }
  return numel * DTYPE_BYTES[t.dtype];
}

/** Checks that `data` fits a tensor of `size` bytes in the file. */
function checkData(
  t: { dtype: Dtype; shape: number[] },
  data: TensorData,
  size: number,
  where: string,
): void {
  if (data instanceof Float32Array) {
    if (data.length * DTYPE_BYTES[t.dtype] !== size) {
      throw new ModelFormatError(
        `${where}: ${data.length} values for shape ${JSON.stringify(t.shape)}`,
      );
    }
  } else if (data instanceof Uint16Array || data instanceof Uint8Array) {
    if (data instanceof Uint16Array && t.dtype === "F32") {
      throw new ModelFormatError(`${where}: 16-bit data given for an F32 tensor`);
    }
    if (data.byteLength !== size) {
      throw new ModelFormatError(
        `${where}: ${data.byteLength} bytes given, shape ${JSON.stringify(t.shape)} of ` +
          `${t.dtype} needs ${size}`,
      );
    }
  } else {
    throw new ModelFormatError(`${where}: data is not a Float32Array, Uint16Array or Uint8Array`);
  }
}

/** The bytes stored for (checked) data: f32 narrowed to `dtype`, else as given. */
function rawBytes(dtype: Dtype, data: TensorData): Uint8Array {
  if (data instanceof Float32Array) {
    const v = dtype === "F32" ? data : dtype === "BF16" ? f32ToBf16(data) : f32ToF16(data);
    return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** A validated file layout: the length prefix and header, then the tensors in file order. */
interface SafetensorsPlan {
  head: Uint8Array;
  tensors: { t: TensorToWrite | LazyTensorToWrite; size: number }[];
  /** Total file size in bytes. */
  bytes: number;
}

/**
 * Validates names, dtypes, shapes and any eager data, and builds the header: tensors in sorted
 * name order, packed back to back, header padded with spaces so the data starts 8-byte aligned.
 */
function planSafetensors(
  tensors: readonly (TensorToWrite | LazyTensorToWrite)[],
  metadata: Record<string, string> | undefined,
  what: string,
): SafetensorsPlan {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    const m: Record<string, string> = {};
    for (const k of Object.keys(metadata).sort()) m[k] = String(metadata[k]);
    header.__metadata__ = m;
  }
  const planned: SafetensorsPlan["tensors"] = [];
  let offset = 0;
  for (let i = 0; i < sorted.length; i++) {
    const t = sorted[i];
    if (t.name === "__metadata__") throw new ModelFormatError(`${what}: reserved tensor name`);
    if (i > 0 && sorted[i - 1].name === t.name) {
      throw new ModelFormatError(`${what}: tensor ${JSON.stringify(t.name)} given twice`);
    }
    const where = `${what}: tensor ${JSON.stringify(t.name)}`;
    const size = tensorSize(t, where);
    if (typeof t.data !== "function") checkData(t, t.data, size, where);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + size] };
    planned.push({ t, size });
    offset += size;
  }
  let headerText = JSON.stringify(header);
  const enc = new TextEncoder();
  const unpadded = enc.encode(headerText).length;
  headerText += " ".repeat(Math.ceil(unpadded / 8) * 8 - unpadded);
  const headerBytes = enc.encode(headerText);
  const head = new Uint8Array(8 + headerBytes.length);
  new DataView(head.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  head.set(headerBytes, 8);
  return { head, tensors: planned, bytes: head.length + offset };
}

/** Streams a planned file: header, then each tensor's bytes, producing lazy data one at a time. */
async function writePlan(sink: ByteSink, plan: SafetensorsPlan, what: string): Promise<number> {
  await writeAll(sink, plan.head);
  for (const { t, size } of plan.tensors) {
    let data: TensorData;
    if (typeof t.data === "function") {
      data = await t.data();
      checkData(t, data, size, `${what}: tensor ${JSON.stringify(t.name)}`);
    } else data = t.data;
    await writeAll(sink, rawBytes(t.dtype, data));
  }
  return plan.bytes;
}

/**
 * Streams a safetensors file into `sink` with the same deterministic bytes as
 * {@link writeSafetensors}. Lazy tensors are produced in file (sorted name) order, each right
 * before its bytes are written, so at most one of them is held at a time. Everything that can be
 * checked without the data is checked before the first byte is written; `what` names the
 * destination in errors. Returns the number of bytes written.
 */
export async function writeSafetensorsTo(
  sink: ByteSink,
  tensors: readonly (TensorToWrite | LazyTensorToWrite)[],
  metadata?: Record<string, string>,
  what = "safetensors stream",
): Promise<number> {
  return await writePlan(sink, planSafetensors(tensors, metadata, what), what);
}

/**
 * Writes a safetensors file atomically with deterministic bytes: tensors in sorted name order,
 * packed back to back, header padded with spaces so the data starts 8-byte aligned. A thin
 * wrapper over {@link writeSafetensorsTo}; bad input is refused before the file is created.
 */
export async function writeSafetensors(
  path: string,
  tensors: readonly (TensorToWrite | LazyTensorToWrite)[],
  metadata?: Record<string, string>,
): Promise<void> {
  const plan = planSafetensors(tensors, metadata, path);
  await atomicWriteWith(path, async (f) => {
    await writePlan(f, plan, path);
  });
}
