/**
 * WGSL for fixed-order workgroup tree reductions, shared by the kernels that reduce a row inside
 * one workgroup (log-softmax, RMSNorm, sum of squares, attention). The pairing order is fixed by
 * the width alone, so a row's result never depends on the batch around it. The serial replay of
 * the same trees (one invocation, no barriers) lives here too, so the two cannot drift apart.
 *
 * @module
 */

/**
 * Declares `var<workgroup> red: array<f32, width>` and `reduceMax(t, v)` / `reduceSum(t, v)`:
 * every one of the `width` invocations passes its value and all get the reduction back.
 * `width` must be a power of two equal to the workgroup size.
 */
export function treeReduceWgsl(width: number): string {
  if (!Number.isInteger(Math.log2(width))) {
    throw new Error(`reduction width ${width}: not a power of 2`);
  }
  const fn = (name: string, combine: string) => /* wgsl */ `
fn ${name}(t: u32, v: f32) -> f32 {
  red[t] = v;
  workgroupBarrier();
  for (var s = ${width / 2}u; s > 0u; s >>= 1u) {
    if (t < s) { red[t] = ${combine}; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}`;
  return `var<workgroup> red: array<f32, ${width}>;` +
    fn("reduceMax", "max(red[t], red[t + s])") + fn("reduceSum", "red[t] + red[t + s]");
}

/**
 * Declares `serialTreeMax(&red)` / `serialTreeSum(&red)` over a private `array<f32, width>` of
 * lane partials: one invocation replays {@link treeReduceWgsl}'s passes (the same pairs in the same
 * order, without barriers), so a "serial" kernel (gpu/serial.ts) gets the workgroup kernel's bits.
 */
export function serialTreeReduceWgsl(width: number): string {
  if (!Number.isInteger(Math.log2(width))) {
    throw new Error(`reduction width ${width}: not a power of 2`);
  }
  const fn = (name: string, combine: string) => /* wgsl */ `
fn ${name}(red: ptr<function, array<f32, ${width}>>) -> f32 {
  for (var s = ${width / 2}u; s > 0u; s >>= 1u) {
    for (var t = 0u; t < s; t++) { (*red)[t] = ${combine}; }
  }
  return (*red)[0];
}`;
  return fn("serialTreeMax", "max((*red)[t], (*red)[t + s])") +
    fn("serialTreeSum", "(*red)[t] + (*red)[t + s]");
}
