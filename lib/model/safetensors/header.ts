/**
 * Opening a safetensors file: its length prefix and JSON header are read and validated (dtypes,
 * shapes, offsets; the data section tiled exactly, no overlaps or holes) before any tensor is.
 * Never trust a header.
 *
 * @module
 */
import { isPlainObject } from "../../util/plain_object.ts";
import {
  type Dtype,
  DTYPE_BYTES,
  KNOWN_UNSUPPORTED,
  MAX_HEADER_BYTES,
  ModelFormatError,
  type SafetensorsFile,
  type TensorInfo,
} from "./format.ts";
import { parseJsonStrict } from "./strict_json.ts";

async function statSize(path: string, what: string): Promise<number> {
  try {
    const st = await Deno.stat(path);
    if (!st.isFile) throw new ModelFormatError(`${what}: not a regular file`);
    return st.size;
  } catch (e) {
    if (e instanceof ModelFormatError) throw e;
    throw new ModelFormatError(`${what}: cannot open (${(e as Error).message})`);
  }
}

/** Reads exactly `dst.length` bytes at `pos`, or fails naming the file and what was read. */
export async function readExact(
  f: Deno.FsFile,
  pos: number,
  dst: Uint8Array,
  path: string,
  what: string,
): Promise<void> {
  await f.seek(pos, Deno.SeekMode.Start);
  let got = 0;
  while (got < dst.length) {
    const n = await f.read(dst.subarray(got));
    if (n === null) {
      throw new ModelFormatError(
        `${path}: ${what}: file ended after ${got} of ${dst.length} bytes (truncated?)`,
      );
    }
    got += n;
  }
}

/**
 * Opens a safetensors file and validates its header (nothing else is read).
 * Throws {@link ModelFormatError} naming the file and the offending tensor or field.
 */
export async function openSafetensors(path: string): Promise<SafetensorsFile> {
  const fileSize = await statSize(path, path);
  if (fileSize < 8) {
    throw new ModelFormatError(`${path}: ${fileSize} bytes is too short for a safetensors header`);
  }
  const f = await Deno.open(path, { read: true });
  let headerBytes: Uint8Array;
  try {
    const lenBytes = new Uint8Array(8);
    await readExact(f, 0, lenBytes, path, "header length");
    const headerLen = new DataView(lenBytes.buffer).getBigUint64(0, true);
    if (headerLen > BigInt(MAX_HEADER_BYTES)) {
      throw new ModelFormatError(
        `${path}: header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte cap`,
      );
    }
    if (headerLen > BigInt(fileSize - 8)) {
      throw new ModelFormatError(
        `${path}: header length ${headerLen} runs past the end of the ${fileSize}-byte file`,
      );
    }
    headerBytes = new Uint8Array(Number(headerLen));
    await readExact(f, 8, headerBytes, path, "header");
  } finally {
    f.close();
  }
  const dataOffset = 8 + headerBytes.length;
  return parseHeader(path, headerBytes, dataOffset, fileSize);
}

function parseHeader(
  path: string,
  headerBytes: Uint8Array,
  dataOffset: number,
  fileSize: number,
): SafetensorsFile {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
  } catch {
    throw new ModelFormatError(`${path}: header is not valid UTF-8`);
  }
  const json = parseJsonStrict(text, `${path}: header`);
  if (!isPlainObject(json)) {
    throw new ModelFormatError(`${path}: header is not a JSON object`);
  }
  const dataSize = fileSize - dataOffset;
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  for (const [name, entry] of Object.entries(json)) {
    if (name === "__metadata__") {
      if (!isPlainObject(entry)) {
        throw new ModelFormatError(`${path}: __metadata__ is not an object`);
      }
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== "string") {
          throw new ModelFormatError(`${path}: __metadata__.${k} is not a string`);
        }
        metadata[k] = v;
      }
      continue;
    }
    const where = `${path}: tensor ${JSON.stringify(name)}`;
    if (!isPlainObject(entry)) throw new ModelFormatError(`${where}: entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = entry;
    if (typeof dtype !== "string") throw new ModelFormatError(`${where}: dtype missing`);
    if (!(dtype in DTYPE_BYTES)) {
      throw new ModelFormatError(
        KNOWN_UNSUPPORTED.has(dtype)
          ? `${where}: dtype ${dtype} is not supported (only F32, F16, BF16)`
          : `${where}: unknown dtype ${JSON.stringify(dtype)} (only F32, F16, BF16)`,
      );
    }
    if (!Array.isArray(shape)) throw new ModelFormatError(`${where}: shape is not an array`);
    let numel = 1;
    for (const d of shape) {
      if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0) {
        throw new ModelFormatError(
          `${where}: shape ${JSON.stringify(shape)} has a dimension that is not a ` +
            `non-negative integer`,
        );
      }
      numel *= d;
    }
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((o) => typeof o === "number" && Number.isSafeInteger(o) && o >= 0)
    ) {
      throw new ModelFormatError(
        `${where}: data_offsets ${JSON.stringify(offsets)} is not two non-negative integers`,
      );
    }
    const [begin, end] = offsets as number[];
    if (end < begin) {
      throw new ModelFormatError(`${where}: data_offsets [${begin}, ${end}] end before begin`);
    }
    if (end > dataSize) {
      throw new ModelFormatError(
        `${where}: data_offsets [${begin}, ${end}] lie outside the ${dataSize}-byte data section`,
      );
    }
    const want = numel * DTYPE_BYTES[dtype as Dtype];
    if (want !== end - begin) {
      throw new ModelFormatError(
        `${where}: shape ${JSON.stringify(shape)} of ${dtype} needs ${want} bytes but ` +
          `data_offsets [${begin}, ${end}] span ${end - begin}`,
      );
    }
    tensors.set(name, { name, dtype: dtype as Dtype, shape: [...shape], begin, end });
  }
  // The data section must be tiled exactly: sorted by begin, each tensor starts where the
  // previous one ended, and the last one ends at the end of the file.
  const sorted = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  let prev: TensorInfo | null = null;
  for (const t of sorted) {
    if (t.begin < pos) {
      throw new ModelFormatError(
        `${path}: tensor ${JSON.stringify(t.name)} [${t.begin}, ${t.end}] overlaps tensor ` +
          `${JSON.stringify(prev!.name)} [${prev!.begin}, ${prev!.end}]`,
      );
    }
    if (t.begin > pos) {
      throw new ModelFormatError(
        `${path}: hole in the data section at bytes [${pos}, ${t.begin}) before tensor ` +
          `${JSON.stringify(t.name)}`,
      );
    }
    pos = t.end;
    prev = t;
  }
  if (pos !== dataSize) {
    throw new ModelFormatError(
      `${path}: the data section has ${dataSize} bytes but tensors cover only ${pos}` +
        (prev ? ` (last tensor ${JSON.stringify(prev.name)})` : ""),
    );
  }
  return { path, dataOffset, fileSize, metadata, tensors };
}
