/**
 * When the "serial" kernel style may be used. Serial kernels give one invocation a whole row's
 * work, which is fast on CPU adapters but runs long loops, and llvmpipe (lavapipe) silently caps
 * the loop iterations of one invocation: measured with Mesa 22.3 (LLVM 15), a single loop stops
 * after 65,535 iterations, and nested loops share one counter (every inner iteration, plus one
 * per inner-loop exit, counts), so a 300x300 nest runs 65,101 times and returns a wrong sum with
 * no error. Each serial dispatcher therefore bounds its own loop count, counting every loop as if
 * the compiler did not unroll it, and falls back to its workgroup kernel (whose per-invocation
 * loops are short) when the bound exceeds {@link SERIAL_LOOP_BUDGET}.
 *
 * @module
 */
import type { Gpu } from "./device.ts";

/** Loop iterations one serial invocation may run: well under llvmpipe's cap of 65,535. */
export const SERIAL_LOOP_BUDGET = 50_000;

/**
 * Whether to dispatch the serial variant of a kernel: the device asks for serial kernels and a
 * bound on one invocation's loop iterations (every loop counted as trips + 1) fits the budget.
 */
export function useSerial(gpu: Gpu, loopIterations: number): boolean {
  return gpu.info.kernels === "serial" && loopIterations <= SERIAL_LOOP_BUDGET;
}
