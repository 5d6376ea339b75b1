/**
 * The bookkeeping at the end of one decode step, on the GPU: store the step's sampled tokens and
 * their log-probs into the segment's outputs and advance every live row's positions. With it a
 * decode segment needs no host upload and no buffer copy per step (copies would also end the
 * compute pass), and every step records the same dispatches on the same buffers.
 *
 * @module
 */
import { grid, kernel, type Recorder } from "./recorder.ts";

const WG = 64;

const STEP_END_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> sampled: array<u32>;
@group(0) @binding(1) var<storage, read> logp: array<f32>;
@group(0) @binding(2) var<storage, read_write> outTokens: array<u32>;
@group(0) @binding(3) var<storage, read_write> outLogp: array<f32>;
@group(0) @binding(4) var<storage, read_write> pos: array<u32>;
@group(0) @binding(5) var<storage, read_write> nextPos: array<u32>;
struct P { n: u32, offset: u32 }
@group(0) @binding(6) var<uniform> p: P;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * ${WG}u + lid;
  if (i >= p.n) { return; }
  outTokens[p.offset + i] = sampled[i];
  outLogp[p.offset + i] = logp[i];
  pos[i] = pos[i] + 1u;
  nextPos[i] = nextPos[i] + 1u;
}`;

/**
 * For the n live rows: outTokens[offset + i] = sampled[i], outLogp[offset + i] = logp[i], and
 * pos[i], nextPos[i] each advance by one. Records only.
 */
export function decodeStepEnd(
  rec: Recorder,
  sampled: GPUBuffer,
  logp: GPUBuffer,
  outTokens: GPUBuffer,
  outLogp: GPUBuffer,
  pos: GPUBuffer,
  nextPos: GPUBuffer,
  n: number,
  offset: number,
): void {
  const k = kernel(rec.gpu, "decodeStepEnd", STEP_END_WGSL);
  rec.dispatch(
    k,
    [sampled, logp, outTokens, outLogp, pos, nextPos],
    [n, offset],
    grid(rec.gpu, Math.ceil(n / WG)),
  );
}
