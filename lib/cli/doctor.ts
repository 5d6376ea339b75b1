/**
 * `doctor`: what this machine gives the engine (the WebGPU adapter, the backend under it, the
 * kernel style chosen for it) and what would make runs faster. Needs no manifest and writes
 * nothing.
 *
 * @module
 */
import { getGpu, type GpuInfo } from "../../gpu/device.ts";
import { type Command, parseCommandArgs } from "./command.ts";

/** Which adapter a backend gives this process, probed in a child (one backend per process). */
async function probeBackend(backend: "vulkan" | "gl"): Promise<string | null> {
  const code = `const a = await navigator.gpu?.requestAdapter();
console.log(JSON.stringify(a ? a.info.description || "unnamed adapter" : null));`;
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--quiet", code],
      env: { DENO_WEBGPU_BACKEND: backend, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!out.success) return null;
    return JSON.parse(new TextDecoder().decode(out.stdout).trim() || "null");
  } catch {
    return null;
  }
}

/** What would make this machine's runs faster, one line each. */
export function adviceFor(info: GpuInfo, backend: string, vulkan: string | null): string[] {
  const out: string[] = [];
  if (backend === "gl") {
    out.push(
      "the GL fallback is in use: it gives the same bits but is slower (tiny-lsp: 508 s on GL, " +
        "188 s on lavapipe's Vulkan, 2 CPU cores); " +
        (vulkan
          ? "unset DENO_WEBGPU_BACKEND to use Vulkan"
          : "install a Vulkan driver: `apt-get install -y mesa-vulkan-drivers` (lavapipe) or " +
            "your GPU vendor's"),
    );
  }
  if (info.isFallbackAdapter) {
    out.push(
      "a CPU adapter (software rendering), about a thousand times slower than a GPU: the tiny " +
        "world runs here; the paper's runs need a GPU with its vendor's Vulkan driver " +
        "(README: Running on a GPU); every CPU core is used, so other work on the cores " +
        "slows runs down",
    );
  } else {
    out.push("a hardware adapter: nothing to install");
  }
  if (!info.f16 && !info.isFallbackAdapter) {
    out.push("no shader-f16 on this adapter (not used by the engine yet: no effect)");
  }
  const env = Deno.env.get("SELFPLAY_KERNELS");
  const natural = info.isFallbackAdapter ? "serial" : "workgroup";
  if (env && env !== natural) {
    out.push(
      `SELFPLAY_KERNELS=${env} overrides the adapter's natural "${natural}" style ` +
        "(same bits, usually slower): unset it",
    );
  }
  return out;
}

/** The `doctor` command. */
export const doctorCommand: Command = {
  name: "doctor",
  summary: "show the WebGPU adapter, backend and kernel style, and what would make runs faster",
  usage: `Usage: deno task doctor

Requests the WebGPU device the engine uses and prints the adapter, the backend under it (each of
Vulkan and GL is probed in a child process), the kernel style chosen for it, the limits the
engine asked for, and what would make runs on this machine faster. Writes nothing.

Options:
  -h, --help  show this help

Exit status: 0 a usable device, 1 none (the message says what to install), 2 usage error.`,
  async run(args) {
    const p = parseCommandArgs(this, args, {}, 0, 0);
    if (!p) return 0;
    const gpu = await getGpu(); // throws GpuUnavailableError with an install hint
    const info = gpu.info;
    const [vulkan, gl] = await Promise.all([probeBackend("vulkan"), probeBackend("gl")]);
    // Deno's wgpu tries Vulkan before GL: the default backend is the first that has an adapter.
    const chosen = Deno.env.get("DENO_WEBGPU_BACKEND") || (vulkan ? "vulkan" : gl ? "gl" : "?");
    const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;
    const lines = [
      `deno:     ${Deno.version.deno} (${Deno.build.os} ${Deno.build.arch}), ` +
      `${navigator.hardwareConcurrency} CPU cores`,
      `adapter:  ${info.description || "(no description)"}` +
      (info.isFallbackAdapter ? " (a CPU adapter)" : ""),
      `backend:  ${chosen}` +
      (Deno.env.get("DENO_WEBGPU_BACKEND") ? " (DENO_WEBGPU_BACKEND)" : "") +
      `; available: vulkan ${vulkan ? `(${vulkan})` : "no"}, gl ${gl ? `(${gl})` : "no"}`,
      `kernels:  ${info.kernels} (${
        info.kernels === "serial"
          ? "row-wise kernels one invocation per row, for CPU adapters"
          : "row-wise kernels spread over a workgroup, for GPUs"
      }${Deno.env.get("SELFPLAY_KERNELS") ? "; set by SELFPLAY_KERNELS" : ""})`,
      `limits:   binding ${gib(info.requestedLimits.maxStorageBufferBindingSize)}, buffer ` +
      `${gib(info.requestedLimits.maxBufferSize)}, ` +
      `${info.requestedLimits.maxStorageBuffersPerShaderStage} storage buffers per stage`,
      ...adviceFor(info, chosen, vulkan).map((a) => `faster:   ${a}`),
    ];
    console.log(lines.join("\n"));
    return 0;
  },
};
