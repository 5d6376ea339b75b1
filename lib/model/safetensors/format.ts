/**
 * The safetensors format as this project reads and writes it: the element types, a header's
 * tensor entries, and the error every malformed model file raises (naming the file and the
 * tensor or field).
 *
 * @module
 */
import { UserError } from "../../util/user_error.ts";

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

/** Largest header we accept (the reference implementation uses the same cap). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Record<Dtype, number> = { F32: 4, F16: 2, BF16: 2 };

/** dtypes of the safetensors spec that we recognise but refuse (to name them in errors). */
export const KNOWN_UNSUPPORTED = new Set([
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
  throw new Error("the safetensors code assumes a little-endian host");
}
