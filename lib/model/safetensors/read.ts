/**
 * Reading tensors of an opened safetensors file, widened to f32: whole, a range of rows, or
 * streamed in chunks. Only the bytes asked for are read from disk.
 *
 * @module
 */
import { widen } from "./dtype.ts";
import { DTYPE_BYTES, ModelFormatError, type SafetensorsFile, type TensorInfo } from "./format.ts";
import { readExact } from "./header.ts";

function tensorOf(file: SafetensorsFile, name: string): TensorInfo {
  const t = file.tensors.get(name);
  if (!t) throw new ModelFormatError(`${file.path}: no tensor ${JSON.stringify(name)}`);
  return t;
}

/** Options for {@link readTensorF32}: a range of rows (first dimension) instead of all. */
export interface ReadOptions {
  rowStart?: number;
  rowCount?: number;
}

/**
 * Reads one tensor (or rows `rowStart .. rowStart+rowCount` of its first dimension), widened
 * to f32. Only that tensor's bytes are read from disk.
 */
export async function readTensorF32(
  file: SafetensorsFile,
  name: string,
  opts: ReadOptions = {},
): Promise<Float32Array> {
  const t = tensorOf(file, name);
  const eb = DTYPE_BYTES[t.dtype];
  let byteStart = t.begin, byteEnd = t.end;
  if (opts.rowStart !== undefined || opts.rowCount !== undefined) {
    const where = `${file.path}: tensor ${JSON.stringify(name)}`;
    if (t.shape.length === 0) throw new ModelFormatError(`${where}: a scalar has no rows`);
    const rows = t.shape[0];
    const rowStart = opts.rowStart ?? 0;
    const rowCount = opts.rowCount ?? rows - rowStart;
    if (
      !Number.isSafeInteger(rowStart) || !Number.isSafeInteger(rowCount) || rowStart < 0 ||
      rowCount < 0 || rowStart + rowCount > rows
    ) {
      throw new RangeError(`${where}: rows [${rowStart}, +${rowCount}) outside its ${rows} rows`);
    }
    const rowBytes = rows === 0 ? 0 : (t.end - t.begin) / rows;
    byteStart = t.begin + rowStart * rowBytes;
    byteEnd = byteStart + rowCount * rowBytes;
  }
  const bytes = new Uint8Array(byteEnd - byteStart);
  const out = new Float32Array(bytes.length / eb);
  if (bytes.length === 0) return out;
  const f = await Deno.open(file.path, { read: true });
  try {
    await readExact(
      f,
      file.dataOffset + byteStart,
      bytes,
      file.path,
      `tensor ${JSON.stringify(name)}`,
    );
  } finally {
    f.close();
  }
  widen(t.dtype, bytes, out);
  return out;
}

/**
 * Reads one tensor in chunks of about `chunkBytes` of file data, widening each to f32 and
 * handing it to `onChunk` with the index of its first element; awaited before the next read,
 * so a multi-GB tensor never needs one big buffer. Each chunk is a fresh array.
 */
export async function streamTensorF32(
  file: SafetensorsFile,
  name: string,
  chunkBytes: number,
  onChunk: (chunk: Float32Array, elementOffset: number) => void | Promise<void>,
): Promise<void> {
  const t = tensorOf(file, name);
  const eb = DTYPE_BYTES[t.dtype];
  const perChunk = Math.max(1, Math.floor(chunkBytes / eb));
  const total = (t.end - t.begin) / eb;
  if (total === 0) return;
  const f = await Deno.open(file.path, { read: true });
  try {
    for (let e = 0; e < total; e += perChunk) {
      const n = Math.min(perChunk, total - e);
      const bytes = new Uint8Array(n * eb);
      await readExact(
        f,
        file.dataOffset + t.begin + e * eb,
        bytes,
        file.path,
        `tensor ${JSON.stringify(name)}`,
      );
      const out = new Float32Array(n);
      widen(t.dtype, bytes, out);
      await onChunk(out, e);
    }
  } finally {
    f.close();
  }
}
