/**
 * Kernel compilation and command recording.
 *
 * Every dispatcher in gpu/ records into a {@link Recorder}; nothing reaches the GPU until
 * {@link Recorder.submit}, which encodes all recorded work into one command buffer (one
 * submission), with every dispatch's small parameter block packed into one uniform arena.
 * Readbacks requested with {@link Recorder.read} are mapped after that submission, so a whole
 * step costs one GPU round trip (~11 ms in Deno, see DESIGN.md).
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

/** One uniform parameter: a plain number is a u32; use {@link f32} / {@link i32} otherwise. */
export type Param = number | { f32: number } | { i32: number };

/** Marks a parameter as f32. */
export const f32 = (x: number): Param => ({ f32: x });
/** Marks a parameter as i32. */
export const i32 = (x: number): Param => ({ i32: x });

const PARAM_SLOT = 256; // minUniformBufferOffsetAlignment upper bound
const MAX_PARAMS = PARAM_SLOT / 4;

const kernelCache = new WeakMap<GPUDevice, Map<string, Kernel>>();

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
    buffers: GPUBuffer[];
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
  #paramView = new DataView(new ArrayBuffer(4));
  #reads: PendingRead[] = [];
  /** Number of dispatches recorded over this recorder's life (for benchmarks). */
  dispatchCount = 0;
  /** Number of submissions made. */
  submitCount = 0;

  constructor(gpu: Gpu) {
    this.gpu = gpu;
  }

  /** Records one dispatch of `k` over `groups` workgroups. */
  dispatch(k: Kernel, buffers: GPUBuffer[], params: Param[], groups: number | number[]): void {
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
      paramSlot = this.#params.length / MAX_PARAMS;
      for (let i = 0; i < MAX_PARAMS; i++) {
        const p = params[i];
        if (p === undefined) this.#params.push(0);
        else if (typeof p === "number") this.#params.push(p >>> 0);
        else if ("f32" in p) {
          this.#paramView.setFloat32(0, p.f32, true);
          this.#params.push(this.#paramView.getUint32(0, true));
        } else this.#params.push(p.i32 >>> 0);
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
      arena = device.createBuffer({
        size: words.byteLength,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      });
      device.queue.writeBuffer(arena, 0, words);
      this.#params = [];
    }
    const enc = device.createCommandEncoder();
    let pass: GPUComputePassEncoder | null = null;
    for (const c of commands) {
      if (c.kind === "dispatch") {
        if (!pass) pass = enc.beginComputePass();
        const entries: GPUBindGroupEntry[] = c.buffers.map((buffer, binding) => ({
          binding,
          resource: { buffer },
        }));
        if (c.paramSlot >= 0) {
          entries.push({
            binding: c.buffers.length,
            resource: { buffer: arena!, offset: c.paramSlot * PARAM_SLOT, size: PARAM_SLOT },
          });
        }
        const bg = device.createBindGroup({ layout: c.k.layout, entries });
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
    arena?.destroy();
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
