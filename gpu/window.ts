/**
 * Windows over buffers larger than one storage binding may be (lavapipe allows 128 MiB, GPUs
 * 2 GiB here): whole rows of a row-major tensor per window, each window's byte offset a multiple
 * of the device's minStorageBufferOffsetAlignment. A kernel then runs once per window on a
 * {@link Binding} of that range. A tensor that fits is one window binding the whole buffer, so
 * the usual case records exactly what it did before.
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import type { Binding } from "./recorder.ts";

/** One window: rows [row0, row0 + rows) of the tensor, and the binding of their bytes. */
export interface RowWindow {
  row0: number;
  rows: number;
  binding: Binding;
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/**
 * Splits a [rows, rowBytes] tensor held in `buf` into windows of whole rows that each fit one
 * binding (`limit`: default `gpu.bindingLimit`, the device's). One window, binding the whole
 * buffer, when it fits.
 */
export function rowWindows(
  gpu: Gpu,
  buf: GPUBuffer,
  rows: number,
  rowBytes: number,
  limit = gpu.bindingLimit,
): RowWindow[] {
  if (buf.size <= limit) return [{ row0: 0, rows, binding: buf }];
  const align = gpu.device.limits.minStorageBufferOffsetAlignment;
  // Rows per window: as many as fit, a multiple of what keeps every offset aligned.
  const step = align / gcd(rowBytes, align);
  const per = Math.floor(Math.floor(limit / rowBytes) / step) * step;
  if (per < 1) {
    throw new Error(
      `${buf.label || "a buffer"}: one row of ${rowBytes} bytes (aligned: ${step} rows) does not ` +
        `fit the device's storage binding limit of ${limit} bytes`,
    );
  }
  const out: RowWindow[] = [];
  for (let row0 = 0; row0 < rows; row0 += per) {
    const n = Math.min(per, rows - row0);
    const offset = row0 * rowBytes;
    const size = Math.min(Math.ceil((n * rowBytes) / 4) * 4, buf.size - offset);
    out.push({ row0, rows: n, binding: { buffer: buf, offset, size } });
  }
  return out;
}
