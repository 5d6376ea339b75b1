/**
 * Kernel compilation and command recording.
 *
 * Every dispatcher in gpu/ records into a {@link Recorder}; nothing reaches the GPU until
 * {@link Recorder.submit}, which encodes all recorded work into one command buffer (one
 * submission), with every dispatch's small parameter block packed into one uniform arena.
 * Readbacks requested with {@link Recorder.read} are mapped after that submission, so a whole
 * step costs one GPU round trip (~11 ms in Deno, see DESIGN.md).
 *
 * Repeated work is cheap to encode: identical parameter blocks share one arena slot, the arena
 * buffer is kept from one submission to the next (rewritten in queue order, after the previous
 * submission's reads), and bind groups are cached by (kernel, buffers, slot), so a decode step
 * recorded again with the same buffers creates no new WebGPU objects.
 *
 * @module
 */
import type { Gpu } from "./device.ts";

/** A compiled compute pipeline. Bindings 0..n-1 are storage buffers; params (if any) is last. */
export interface Kernel {
  name: string;
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  /** Workgroup size the WGSL declares, for dispatchers that need it. */
  workgroupSize: number;
}

/**
 * A storage binding: a whole buffer, or a window of one (offset a multiple of the device's
 * minStorageBufferOffsetAlignment), for buffers larger than one binding may be (gpu/window.ts).
 */
export type Binding = GPUBuffer | { buffer: GPUBuffer; offset: number; size: number };

/** One uniform parameter: a plain number is a u32; use {@link f32} / {@link i32} otherwise. */
export type Param = number | { f32: number } | { i32: number };

/** Marks a parameter as f32. */
export const f32 = (x: number): Param => ({ f32: x });
/** Marks a parameter as i32. */
export const i32 = (x: number): Param => ({ i32: x });

const PARAM_SLOT = 256; // minUniformBufferOffsetAlignment upper bound
const MAX_PARAMS = PARAM_SLOT / 4;

const kernelCache = new WeakMap<GPUDevice, Map<string, Kernel>>();

/** A small id per buffer and per kernel, for bind-group cache keys. */
const ids = new WeakMap<object, number>();
let nextId = 1;
function idOf(o: object): number {
  let id = ids.get(o);
  if (id === undefined) ids.set(o, id = nextId++);
  return id;
}

/** A binding's part of a bind-group cache key. */
function bindingKey(b: Binding): string {
  return b instanceof GPUBuffer ? `${idOf(b)}` : `${idOf(b.buffer)}@${b.offset}+${b.size}`;
}

/** Bind groups a recorder keeps at most before it starts over (bounds memory). */
const MAX_CACHED_BIND_GROUPS = 8192;

/**
 * One uniform arena per device, shared by its recorders. Each submit writes its parameters into
 * it with queue.writeBuffer, which the queue orders after every earlier submission (that read
 * the arena) and before this one; it only grows, and a grown arena is a new buffer (new id).
 */
const arenas = new WeakMap<GPUDevice, GPUBuffer>();

function arenaFor(device: GPUDevice, bytes: number): GPUBuffer {
  let arena = arenas.get(device);
  if (!arena || arena.size < bytes) {
    arena?.destroy(); // earlier submissions keep what they use alive until they finish
    // A power of two of slots, so repeated similar work settles on one buffer.
    const slots = 2 ** Math.ceil(Math.log2(bytes / PARAM_SLOT));
    arena = device.createBuffer({
      size: slots * PARAM_SLOT,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      label: "recorder.params",
    });
    arenas.set(device, arena);
  }
  return arena;
}

/**
 * Compiles (once per device and source) a WGSL compute shader with entry point `main`.
 * Shaders must use every binding they declare (the layout is derived from the shader).
 */
export function kernel(gpu: Gpu, name: string, code: string, workgroupSize = 0): Kernel {
  let byDevice = kernelCache.get(gpu.device);
  if (!byDevice) kernelCache.set(gpu.device, byDevice = new Map());
  const key = name + "\n" + code;
  const hit = byDevice.get(key);
  if (hit) return hit;
  const module = gpu.device.createShaderModule({ label: name, code });
  const pipeline = gpu.device.createComputePipeline({
    label: name,
    layout: "auto",
    compute: { module, entryPoint: "main" },
  });
  const k: Kernel = { name, pipeline, layout: pipeline.getBindGroupLayout(0), workgroupSize };
  byDevice.set(key, k);
  return k;
}

type Command =
  | {
    kind: "dispatch";
    k: Kernel;
    buffers: Binding[];
    paramSlot: number;
    groups: [number, number, number];
  }
  | {
    kind: "copy";
    src: GPUBuffer;
    srcOffset: number;
    dst: GPUBuffer;
    dstOffset: number;
    size: number;
  }
  | { kind: "clear"; buf: GPUBuffer; offset: number; size: number };

interface PendingRead {
  staging: GPUBuffer;
  size: number;
  resolve: (b: ArrayBuffer) => void;
  reject: (e: unknown) => void;
}

/** Records dispatches, copies and readbacks; {@link submit} sends them as one submission. */
export class Recorder {
  readonly gpu: Gpu;
  #commands: Command[] = [];
  #params: number[] = []; // u32 words, PARAM_SLOT/4 per slot
  /** Slot of each distinct parameter block recorded since the last submit. */
  #slotOf = new Map<string, number>();
  #paramView = new DataView(new ArrayBuffer(4));
  /** Bind groups by (kernel, buffers, arena, slot). */
  #bindGroups = new Map<string, GPUBindGroup>();
  #reads: PendingRead[] = [];
  /** Number of dispatches recorded over this recorder's life (for benchmarks). */
  dispatchCount = 0;
  /** Number of submissions made. */
  submitCount = 0;

  constructor(gpu: Gpu) {
    this.gpu = gpu;
  }

  /** Records one dispatch of `k` over `groups` workgroups. */
  dispatch(k: Kernel, buffers: Binding[], params: Param[], groups: number | number[]): void {
    // A binding past the device's limit would be a validation error that surfaces only later,
    // asynchronously: refuse it here, naming the kernel and the buffer.
    const limit = this.gpu.device.limits.maxStorageBufferBindingSize;
    buffers.forEach((b, i) => {
      const size = b.size;
      if (size > limit) {
        const buf = b instanceof GPUBuffer ? b : b.buffer;
        throw new Error(
          `${k.name}: binding ${i} (${buf.label || "unlabelled"}) is ${size} bytes, past this ` +
            `device's storage binding limit of ${limit} bytes`,
        );
      }
    });
    if (params.length > MAX_PARAMS) throw new Error(`${k.name}: too many params`);
    const g = typeof groups === "number" ? [groups, 1, 1] : groups;
    const gx = g[0], gy = g[1] ?? 1, gz = g[2] ?? 1;
    if (gx === 0 || gy === 0 || gz === 0) return;
    const maxG = this.gpu.device.limits.maxComputeWorkgroupsPerDimension;
    if (gx > maxG || gy > maxG || gz > maxG) {
      throw new Error(`${k.name}: dispatch ${gx}x${gy}x${gz} exceeds ${maxG} per dimension`);
    }
    let paramSlot = -1;
    if (params.length > 0) {
      const words = params.map((p) => {
        if (typeof p === "number") return p >>> 0;
        if ("f32" in p) {
          this.#paramView.setFloat32(0, p.f32, true);
          return this.#paramView.getUint32(0, true);
        }
        return p.i32 >>> 0;
      });
      const key = words.join(",");
      const hit = this.#slotOf.get(key);
      if (hit !== undefined) paramSlot = hit;
      else {
        paramSlot = this.#params.length / MAX_PARAMS;
        for (let i = 0; i < MAX_PARAMS; i++) this.#params.push(words[i] ?? 0);
        this.#slotOf.set(key, paramSlot);
      }
    }
    this.#commands.push({ kind: "dispatch", k, buffers, paramSlot, groups: [gx, gy, gz] });
    this.dispatchCount++;
  }

  /** Records a buffer-to-buffer copy (sizes and offsets multiples of 4). */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): void {
    if (size > 0) this.#commands.push({ kind: "copy", src, srcOffset, dst, dstOffset, size });
  }

  /** Records zero-filling of a buffer range. */
  clear(buf: GPUBuffer, offset = 0, size = buf.size - offset): void {
    if (size > 0) this.#commands.push({ kind: "clear", buf, offset, size });
  }

  /**
   * Records a readback of `size` bytes of `src` at `offset`; the promise resolves after the
   * next {@link submit} completes.
   */
  read(src: GPUBuffer, offset = 0, size = src.size - offset): Promise<ArrayBuffer> {
    const padded = Math.ceil(size / 4) * 4;
    const staging = this.gpu.device.createBuffer({
      size: Math.max(padded, 4),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    this.copy(src, offset, staging, 0, padded);
    return new Promise((resolve, reject) => {
      this.#reads.push({ staging, size, resolve, reject });
    });
  }

  /** Encodes and submits everything recorded; resolves pending reads. Returns when submitted. */
  submit(): Promise<void> {
    this.#throwIfBroken();
    const device = this.gpu.device;
    const commands = this.#commands;
    const reads = this.#reads;
    this.#commands = [];
    this.#reads = [];
    let arena: GPUBuffer | null = null;
    if (this.#params.length > 0) {
      const words = new Uint32Array(this.#params);
      arena = arenaFor(device, words.byteLength);
      device.queue.writeBuffer(arena, 0, words);
      this.#params = [];
      this.#slotOf.clear();
    }
    if (this.#bindGroups.size > MAX_CACHED_BIND_GROUPS) this.#bindGroups.clear();
    const enc = device.createCommandEncoder();
    let pass: GPUComputePassEncoder | null = null;
    for (const c of commands) {
      if (c.kind === "dispatch") {
        if (!pass) pass = enc.beginComputePass();
        const slot = c.paramSlot >= 0 ? `${idOf(arena!)}.${c.paramSlot}` : "";
        const key = `${idOf(c.k)}:${c.buffers.map(bindingKey).join(",")}:${slot}`;
        let bg = this.#bindGroups.get(key);
        if (!bg) {
          const entries: GPUBindGroupEntry[] = c.buffers.map((b, binding) => ({
            binding,
            resource: b instanceof GPUBuffer ? { buffer: b } : b,
          }));
          if (c.paramSlot >= 0) {
            entries.push({
              binding: c.buffers.length,
              resource: { buffer: arena!, offset: c.paramSlot * PARAM_SLOT, size: PARAM_SLOT },
            });
          }
          bg = device.createBindGroup({ layout: c.k.layout, entries });
          this.#bindGroups.set(key, bg);
        }
        pass.setPipeline(c.k.pipeline);
        pass.setBindGroup(0, bg);
        pass.dispatchWorkgroups(...c.groups);
      } else {
        if (pass) {
          pass.end();
          pass = null;
        }
        if (c.kind === "copy") {
          enc.copyBufferToBuffer(c.src, c.srcOffset, c.dst, c.dstOffset, c.size);
        } else enc.clearBuffer(c.buf, c.offset, c.size);
      }
    }
    if (pass) pass.end();
    device.queue.submit([enc.finish()]);
    this.submitCount++;
    if (reads.length === 0) return Promise.resolve();
    return Promise.all(reads.map(async (r) => {
      try {
        await r.staging.mapAsync(GPUMapMode.READ);
        const copy = r.staging.getMappedRange().slice(0, r.size);
        r.staging.unmap();
        r.staging.destroy();
        this.#throwIfBroken(); // data computed after a WebGPU error is not to be trusted
        r.resolve(copy);
      } catch (e) {
        // A destroyed device can fail a pending map before its lost promise has settled: give
        // the loss a moment to be known, so the error names the cause, not a symptom.
        const lost = this.gpu.lost ?? await lostWithin(this.gpu, 100);
        r.reject(lost ? new Error(`the GPU device was lost (${lost})`) : e);
      }
    })).then(() => {});
  }

  /** Refuses to go on after a lost device or a WebGPU error (results would be wrong). */
  #throwIfBroken(): void {
    if (this.gpu.lost) throw new Error(`the GPU device was lost (${this.gpu.lost})`);
    if (this.gpu.error) {
      throw new Error(`a WebGPU error made the results invalid: ${this.gpu.error}`);
    }
  }
}

/** The device's loss reason if it is lost within `ms` milliseconds, else null. */
async function lostWithin(gpu: Gpu, ms: number): Promise<string | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<null>((res) => (timer = setTimeout(() => res(null), ms)));
  const lost = gpu.device.lost.then((l) => `${l.reason}: ${l.message}`);
  try {
    return await Promise.race([lost, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Ceil-divide, for workgroup counts. */
export const cdiv = (a: number, b: number): number => Math.ceil(a / b);

/**
 * Splits a 1-D workgroup count into a 2-D grid that respects maxComputeWorkgroupsPerDimension.
 * Shaders recover the flat id as `wid.x + wid.y * nwg.x` (use `@builtin(num_workgroups)`).
 */
export function grid(gpu: Gpu, groups: number): [number, number, number] {
  const maxG = gpu.device.limits.maxComputeWorkgroupsPerDimension;
  if (groups <= maxG) return [groups, 1, 1];
  const y = Math.ceil(groups / maxG);
  return [Math.ceil(groups / y), y, 1];
}
