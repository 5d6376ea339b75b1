/**
 * safetensors reader and writer with strict validation, and HF checkpoint directories
 * (`model.safetensors` or shards listed in `model.safetensors.index.json`).
 *
 * Never trust a header: its length, JSON, dtypes, shapes and offsets are all checked before any
 * tensor is read, and the data section must be covered exactly (no overlaps, no holes), as the
 * safetensors spec asks. Only F32, F16 and BF16 are accepted; everything is widened to f32 on
 * read. Reads touch only the bytes of the tensor (or row range) asked for.
 *
 * @module
 */
import { UserError } from "../util/user_error.ts";
import { pathExists } from "../util/fs.ts";

/** Raised for any malformed model file; the message names the file and the tensor or field. */
export class ModelFormatError extends UserError {
  override name = "ModelFormatError";
}

/** Element types we read and write. */
export type Dtype = "F32" | "F16" | "BF16";

/** One tensor's entry in a safetensors header; `begin`/`end` are relative to the data section. */
export interface TensorInfo {
  name: string;
  dtype: Dtype;
  shape: number[];
  begin: number;
  end: number;
}

/** A validated safetensors file (header only; tensors are read on demand). */
export interface SafetensorsFile {
  path: string;
  /** Absolute byte offset of the data section (8 + header length). */
  dataOffset: number;
  fileSize: number;
  metadata: Record<string, string>;
  tensors: Map<string, TensorInfo>;
}

/** Tensors of a checkpoint directory, each with the file holding it. */
export interface Checkpoint {
  dir: string;
  tensors: Map<string, { file: SafetensorsFile; info: TensorInfo }>;
}

/** Largest header we accept (the reference implementation uses the same cap). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Record<Dtype, number> = { F32: 4, F16: 2, BF16: 2 };

/** dtypes of the safetensors spec that we recognise but refuse (to name them in errors). */
const KNOWN_UNSUPPORTED = new Set([
  "F64",
  "I64",
  "I32",
  "I16",
  "I8",
  "U64",
  "U32",
  "U16",
  "U8",
  "BOOL",
  "F8_E4M3",
  "F8_E5M2",
  "F8_E8M0",
  "F4",
  "F6_E2M3",
  "F6_E3M2",
  "C64",
]);

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error("safetensors.ts assumes a little-endian host");
}

// ---------------------------------------------------------------------------------------------
// Strict JSON: JSON.parse silently keeps the last of duplicate keys, which would let a header or
// an index hide a tensor. This small parser refuses duplicates and otherwise matches JSON.parse.

/** Parses JSON text, refusing duplicate object keys. `what` names the source in errors. */
export function parseJsonStrict(text: string, what: string): unknown {
  let i = 0;
  const fail = (msg: string): never => {
    throw new ModelFormatError(`${what}: invalid JSON at character ${i}: ${msg}`);
  };
  const ws = () => {
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
  };
  const str = (): string => {
    const start = i;
    i++; // opening quote
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        try {
          return JSON.parse(text.slice(start, i));
        } catch (e) {
          return fail((e as Error).message);
        }
      }
      if (c === 0x5c) i += 2;
      else if (c < 0x20) return fail("control character in string");
      else i++;
    }
    return fail("unterminated string");
  };
  const NUM = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  const value = (depth: number): unknown => {
    if (depth > 64) fail("nesting deeper than 64");
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const obj: Record<string, unknown> = {};
      const seen = new Set<string>();
      ws();
      if (text[i] === "}") {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail("expected a key");
        const key = str();
        if (seen.has(key)) {
          throw new ModelFormatError(`${what}: duplicate key ${JSON.stringify(key)}`);
        }
        seen.add(key);
        ws();
        if (text[i] !== ":") fail("expected ':'");
        i++;
        Object.defineProperty(obj, key, {
          value: value(depth + 1),
          enumerable: true,
          writable: true,
          configurable: true,
        });
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "}") {
          i++;
          return obj;
        } else fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      i++;
      const arr: unknown[] = [];
      ws();
      if (text[i] === "]") {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value(depth + 1));
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "]") {
          i++;
          return arr;
        } else fail("expected ',' or ']'");
      }
    }
    if (c === '"') return str();
    if (text.startsWith("true", i)) return (i += 4, true);
    if (text.startsWith("false", i)) return (i += 5, false);
    if (text.startsWith("null", i)) return (i += 4, null);
    NUM.lastIndex = i;
    const m = NUM.exec(text);
    if (!m) return fail("unexpected token");
    i += m[0].length;
    return Number(m[0]);
  };
  const v = value(0);
  ws();
  if (i !== text.length) fail("trailing characters");
  return v;
}

// ---------------------------------------------------------------------------------------------
// Header parsing

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

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
async function readExact(
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

// ---------------------------------------------------------------------------------------------
// Widening and narrowing

let f16Table: Uint32Array | null = null;

/** f32 bit patterns of all 65536 f16 values (exact: every f16 is an f32). */
function f16ToF32Table(): Uint32Array {
  if (f16Table) return f16Table;
  const t = new Uint32Array(65536);
  const f = new Float32Array(t.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) {
      // zero or subnormal: mant * 2^-24 is exact in f32
      f[h] = (sign ? -1 : 1) * mant * 2 ** -24;
    } else if (exp === 31) {
      t[h] = (sign | 0x7f800000 | (mant << 13)) >>> 0; // inf, or nan keeping its payload
    } else {
      t[h] = (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
    }
  }
  return f16Table = t;
}

/** Widens raw little-endian bytes of `dtype` into `out` (f32). */
function widen(dtype: Dtype, bytes: Uint8Array, out: Float32Array): void {
  const n = out.length;
  if (dtype === "F32") {
    new Uint8Array(out.buffer, out.byteOffset, n * 4).set(bytes.subarray(0, n * 4));
    return;
  }
  // bytes may sit at an odd offset; copy when it is not 2-byte aligned
  const src = bytes.byteOffset % 2 === 0
    ? new Uint16Array(bytes.buffer, bytes.byteOffset, n)
    : new Uint16Array(bytes.slice(0, n * 2).buffer);
  const dst = new Uint32Array(out.buffer, out.byteOffset, n);
  if (dtype === "BF16") {
    for (let i = 0; i < n; i++) dst[i] = src[i] << 16;
  } else {
    const t = f16ToF32Table();
    for (let i = 0; i < n; i++) dst[i] = t[src[i]];
  }
}

/** Widens BF16 bit patterns to f32 (exact). */
export function bf16ToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  widen("BF16", new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength), out);
  return out;
}

/** Widens F16 bit patterns to f32 (exact, subnormals, inf and nan included). */
export function f16ToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  widen("F16", new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength), out);
  return out;
}

/** Narrows f32 to BF16 bit patterns, rounding to nearest even; nan stays a (quiet) nan. */
export function f32ToBf16(x: Float32Array): Uint16Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < u.length; i++) {
    const b = u[i];
    if ((b & 0x7fffffff) > 0x7f800000) out[i] = (b >>> 16) | 0x40;
    else out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** Narrows f32 to F16 bit patterns, rounding to nearest even (subnormals, overflow to inf). */
export function f32ToF16(x: Float32Array): Uint16Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < u.length; i++) {
    const b = u[i];
    const sign = (b >>> 16) & 0x8000;
    const exp = (b >>> 23) & 0xff;
    const mant = b & 0x7fffff;
    let h: number;
    if (exp === 255) h = 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
    else if (exp > 142) h = 0x7c00; // |x| >= 2^16: beyond f16's range
    else if (exp >= 113) {
      // normal f16; a carry out of the mantissa correctly bumps the exponent (up to inf)
      h = ((exp - 112) << 10) | (mant >>> 13);
      const rem = mant & 0x1fff;
      if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
    } else if (exp >= 102) {
      // subnormal f16: units of 2^-24
      const m = mant | 0x800000;
      const shift = 126 - exp;
      h = m >>> shift;
      const rem = m & ((1 << shift) - 1);
      const half = 1 << (shift - 1);
      if (rem > half || (rem === half && (h & 1))) h++;
    } else h = 0; // below half the smallest subnormal
    out[i] = sign | h;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Reading tensors

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

// ---------------------------------------------------------------------------------------------
// Writing

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

/**
 * Where streamed bytes go: a `Deno.FsFile` (whose `write` may be partial and returns the count)
 * or a `WritableStreamDefaultWriter<Uint8Array>` (whose `write` takes the whole chunk).
 */
export interface ByteSink {
  write(chunk: Uint8Array): Promise<number | void>;
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

async function writeAll(f: ByteSink, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) {
    const n = await f.write(bytes.subarray(off));
    // A stream writer takes the whole chunk and returns nothing.
    off += typeof n === "number" ? n : bytes.length - off;
  }
}

/** Writes `bytes` (or the output of `fill`) to `path` atomically: temp file, fsync, rename. */
export async function writeFileAtomic(
  path: string,
  fill: Uint8Array | ((f: Deno.FsFile) => Promise<void>),
): Promise<void> {
  const tmp = `${path}.${Deno.pid}.tmp`;
  const f = await Deno.open(tmp, { write: true, create: true, truncate: true });
  try {
    if (fill instanceof Uint8Array) await writeAll(f, fill);
    else await fill(f);
    await f.sync();
  } catch (e) {
    f.close();
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  f.close();
  await Deno.rename(tmp, path);
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
  await writeFileAtomic(path, async (f) => {
    await writePlan(f, plan, path);
  });
}

// ---------------------------------------------------------------------------------------------
// Checkpoint directories

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
