/**
 * Storage buffer helpers: allocation with clear labels, uploads, and one-off readbacks.
 *
 * @module
 */
import { type Gpu, MAX_BINDING_BYTES } from "./device.ts";
import { Recorder } from "./recorder.ts";

/** Usage of every engine storage buffer: bindable, copyable both ways. */
export const STORAGE_USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC |
  GPUBufferUsage.COPY_DST;

/** The size {@link createBuffer} allocates for `bytes`: rounded up to 16, at least 16. */
export const allocatedBytes = (bytes: number): number => Math.max(16, Math.ceil(bytes / 16) * 16);

/** Allocates a zeroed storage buffer of `bytes` (rounded up to 16). */
export function createBuffer(gpu: Gpu, bytes: number, label: string): GPUBuffer {
  const size = allocatedBytes(bytes);
  if (size > MAX_BINDING_BYTES) {
    throw new Error(`buffer ${label}: ${bytes} bytes exceeds the 2 GiB binding limit`);
  }
  if (size > gpu.device.limits.maxBufferSize) {
    throw new Error(
      `buffer ${label}: ${bytes} bytes exceeds this device's maxBufferSize ` +
        `${gpu.device.limits.maxBufferSize}`,
    );
  }
  return gpu.device.createBuffer({ size, usage: STORAGE_USAGE, label });
}

/** Allocates a storage buffer holding `data`. */
export function uploadBuffer(
  gpu: Gpu,
  data: Float32Array | Uint32Array | Int32Array | Uint16Array,
  label: string,
): GPUBuffer {
  const buf = createBuffer(gpu, data.byteLength, label);
  writeBuffer(gpu, buf, data);
  return buf;
}

/** Writes `data` into `buf` at byte `offset` (padded to a multiple of 4 bytes). */
export function writeBuffer(
  gpu: Gpu,
  buf: GPUBuffer,
  data: ArrayBufferView,
  offset = 0,
): void {
  const src = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  // Copy into a fresh, 4-byte padded ArrayBuffer (WebGPU needs both).
  const bytes = new Uint8Array(Math.ceil(src.byteLength / 4) * 4);
  bytes.set(src);
  gpu.device.queue.writeBuffer(buf, offset, bytes);
}

/** Reads a whole f32 buffer back (or `count` elements). One GPU round trip. */
export async function readF32(gpu: Gpu, buf: GPUBuffer, count?: number): Promise<Float32Array> {
  const rec = new Recorder(gpu);
  const p = rec.read(buf, 0, (count ?? buf.size / 4) * 4);
  await rec.submit();
  return new Float32Array(await p);
}

/** Reads a whole u32 buffer back (or `count` elements). One GPU round trip. */
export async function readU32(gpu: Gpu, buf: GPUBuffer, count?: number): Promise<Uint32Array> {
  const rec = new Recorder(gpu);
  const p = rec.read(buf, 0, (count ?? buf.size / 4) * 4);
  await rec.submit();
  return new Uint32Array(await p);
}
