/**
 * WebGPU adapter and device set-up: the one place that asks for an adapter, the limits we need
 * and the optional features we can use.
 *
 * @module
 */
import { UserError } from "../lib/util/user_error.ts";
import { ensureRuntimeDir } from "./runtime_dir.ts";

/** What we learned about the adapter and what we asked of it; recorded in bundle provenance. */
export interface GpuInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
  /** Backend as far as we can tell ("vulkan", "gl", ... or "unknown"). */
  backend: string;
  features: string[];
  /** Adapter limits (what the hardware offers). */
  adapterLimits: Record<string, number>;
  /** Limits requested on the device (what we use). */
  requestedLimits: Record<string, number>;
  /** Whether `shader-f16` was enabled on the device. */
  f16: boolean;
  /** Which kernel style the engine uses on this adapter (see {@link KernelStyle}). */
  kernels: KernelStyle;
}

/**
 * How row-wise kernels (attention, RMSNorm, log-softmax, entropy) are laid out. "workgroup"
 * spreads one row over a workgroup with shared-memory tiles and tree reductions: right for a real
 * GPU. "serial" gives each row one invocation that replays exactly the same arithmetic order with
 * no barriers: right for CPU adapters such as lavapipe, where every workgroup barrier is a costly
 * context switch. Both give the same bits (tests/serial_kernels_test.ts,
 * tests/gpu_attention_serial_test.ts); rows too long for lavapipe's loop cap keep the workgroup
 * kernel (gpu/serial.ts). Matmul follows the style too: gpu/matmul_serial.ts on CPU adapters,
 * the tiled kernel (and the few-row kernel for small forwards) on GPUs, all with the same bits.
 */
export type KernelStyle = "workgroup" | "serial";

/** A device plus what we know about it. All engine code takes this object. */
export interface Gpu {
  adapter: GPUAdapter;
  device: GPUDevice;
  info: GpuInfo;
  /** Set when the device is lost; every later submit throws with this reason. */
  lost: string | null;
  /**
   * The largest storage binding the engine makes (bytes): the device's limit. A tensor past it
   * is bound in windows of whole rows (gpu/window.ts); tests lower it to exercise that path.
   */
  bindingLimit: number;
  /**
   * The first WebGPU validation or out-of-memory error the device reported. Such errors are
   * asynchronous and would otherwise only be logged while the run goes on with wrong numbers:
   * every later submit and readback throws with it instead.
   */
  error: string | null;
}

/** Raised when no adapter or device can be had; the message says what to install. */
export class GpuUnavailableError extends UserError {
  override name = "GpuUnavailableError";
  override readonly resumeHelps = true;
}

/** Options for {@link createGpu}. */
export interface GpuOptions {
  /** Prefer a high-performance adapter (default true). */
  highPerformance?: boolean;
  /** Enable `shader-f16` when the adapter has it (default true). */
  f16?: boolean;
  /**
   * Kernel style; default: SELFPLAY_KERNELS if set, else "serial" on a fallback (CPU) adapter
   * and "workgroup" otherwise.
   */
  kernels?: KernelStyle;
}

/** The kernel style for an adapter: an explicit choice, SELFPLAY_KERNELS, or the adapter kind. */
export function chooseKernelStyle(
  explicit: KernelStyle | undefined,
  isFallback: boolean,
): KernelStyle {
  if (explicit) return explicit;
  const env = Deno.env.get("SELFPLAY_KERNELS");
  if (env === "serial" || env === "workgroup") return env;
  if (env) throw new Error(`SELFPLAY_KERNELS=${env}: expected "serial" or "workgroup"`);
  return isFallback ? "serial" : "workgroup";
}

const LIMIT_NAMES = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxStorageBuffersPerShaderStage",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupStorageSize",
  "maxComputeWorkgroupsPerDimension",
  "maxUniformBufferBindingSize",
  "maxBindGroups",
  "minStorageBufferOffsetAlignment",
  "minUniformBufferOffsetAlignment",
] as const;

/** Largest binding we ever use: kept under 2 GiB (DESIGN.md, GPU engine rules). */
export const MAX_BINDING_BYTES = 2 ** 31 - 4;

const INSTALL_HINT =
  "Install a WebGPU driver: on Debian/Ubuntu `apt-get install -y mesa-vulkan-drivers` " +
  "(lavapipe, a CPU Vulkan driver) or your GPU vendor's Vulkan driver; " +
  "DENO_WEBGPU_BACKEND=vulkan|gl selects a backend.";

function limitsOf(l: GPUSupportedLimits): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of LIMIT_NAMES) out[k] = Number(l[k]);
  return out;
}

function guessBackend(description: string): string {
  const env = Deno.env.get("DENO_WEBGPU_BACKEND");
  if (env) return env;
  const d = description.toLowerCase();
  if (d.includes("opengl") || d.includes(" gl ")) return "gl";
  if (d.includes("llvmpipe") || d.includes("lavapipe")) return "vulkan-or-gl (mesa cpu)";
  return "unknown";
}

let cached: Promise<Gpu> | null = null;
/** Every device this process created, so a fault can be asked for without awaiting. */
const created: Gpu[] = [];

/**
 * The faults of every device this process made, one per faulty device: its first WebGPU
 * validation or out-of-memory error, or its loss. The runner compares them before and after a
 * kind runs, so a run whose GPU work failed is never marked completed.
 */
export function gpuFaults(): string[] {
  const out: string[] = [];
  for (const g of created) {
    if (g.error) out.push(`WebGPU error: ${g.error}`);
    else if (g.lost) out.push(`the WebGPU device was lost (${g.lost})`);
  }
  return out;
}

/**
 * Returns the process-wide GPU (one device per process keeps pipelines and buffers shared).
 * Throws {@link GpuUnavailableError} with an install hint when WebGPU is missing.
 */
export function getGpu(opts: GpuOptions = {}): Promise<Gpu> {
  if (!cached) {
    cached = createGpu(opts);
    cached.catch(() => cached = null);
  }
  return cached;
}

/** Requests an adapter and a device with the limits the engine needs. */
export async function createGpu(opts: GpuOptions = {}): Promise<Gpu> {
  if (!("gpu" in navigator) || !navigator.gpu) {
    throw new GpuUnavailableError(`WebGPU is not available in this Deno. ${INSTALL_HINT}`);
  }
  if (Deno.build.os === "linux") ensureRuntimeDir(); // silences Mesa's XDG_RUNTIME_DIR warning
  let adapter: GPUAdapter | null = null;
  try {
    adapter = await navigator.gpu.requestAdapter({
      powerPreference: opts.highPerformance === false ? "low-power" : "high-performance",
    });
  } catch (e) {
    throw new GpuUnavailableError(
      `requesting a WebGPU adapter failed (${(e as Error).message}). ${INSTALL_HINT}`,
    );
  }
  if (!adapter) throw new GpuUnavailableError(`no WebGPU adapter found. ${INSTALL_HINT}`);
  const al = adapter.limits;
  const requiredLimits: Record<string, number> = {
    maxStorageBufferBindingSize: Math.min(al.maxStorageBufferBindingSize, MAX_BINDING_BYTES),
    maxBufferSize: Math.min(al.maxBufferSize, MAX_BINDING_BYTES),
    // Multi-tensor optimizer dispatches bind one buffer per tensor (gpu/optimizer.ts): more
    // bindings, fewer dispatches per step. Never fewer than WebGPU's default of 8.
    maxStorageBuffersPerShaderStage: Math.min(al.maxStorageBuffersPerShaderStage, 64),
    maxComputeWorkgroupStorageSize: al.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: al.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: al.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupSizeY: al.maxComputeWorkgroupSizeY,
    maxComputeWorkgroupsPerDimension: al.maxComputeWorkgroupsPerDimension,
  };
  const wantF16 = opts.f16 !== false && adapter.features.has("shader-f16");
  const requiredFeatures: GPUFeatureName[] = wantF16 ? ["shader-f16"] : [];
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  } catch (e) {
    throw new GpuUnavailableError(
      `the WebGPU adapter refused a device with limits ${JSON.stringify(requiredLimits)}: ${
        (e as Error).message
      }. ${INSTALL_HINT}`,
    );
  }
  const ai = adapter.info;
  const isFallbackAdapter = Boolean((ai as { isFallbackAdapter?: boolean }).isFallbackAdapter);
  const gpu: Gpu = {
    adapter,
    device,
    lost: null,
    error: null,
    bindingLimit: device.limits.maxStorageBufferBindingSize,
    info: {
      vendor: ai.vendor,
      architecture: ai.architecture,
      device: ai.device,
      description: ai.description,
      isFallbackAdapter,
      backend: guessBackend(ai.description),
      features: [...adapter.features].sort(),
      adapterLimits: limitsOf(adapter.limits),
      requestedLimits: limitsOf(device.limits),
      f16: wantF16,
      kernels: chooseKernelStyle(opts.kernels, isFallbackAdapter),
    },
  };
  created.push(gpu);
  device.lost.then((l) => {
    gpu.lost = `${l.reason}: ${l.message}`;
  });
  device.addEventListener("uncapturederror", (ev) => {
    const message = (ev as GPUUncapturedErrorEvent).error.message;
    console.error(`WebGPU error: ${message}`);
    gpu.error ??= message;
  });
  return gpu;
}
