/**
 * The bindings and parameters the attention kernels share: every variant of a pass (per-(row,
 * head) workgroup, serial, blocked) binds the same buffers in the same order with the same
 * parameter block, so its dispatcher can pick any of them.
 *
 * @module
 */

/** The forward: q, the caches, seq, pos -> out, lse; P { M, nHeads, nKv, S, scale }. */
export const FORWARD_BINDINGS_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> kc: array<f32>;
@group(0) @binding(2) var<storage, read> vc: array<f32>;
@group(0) @binding(3) var<storage, read> seq: array<u32>;
@group(0) @binding(4) var<storage, read> pos: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;
struct P { M: u32, nHeads: u32, nKv: u32, S: u32, scale: f32 }
@group(0) @binding(7) var<uniform> p: P;`;

/** The backward's parameter block (training layout: B sequences of S rows). */
const BACKWARD_PARAMS_WGSL = "struct P { B: u32, S: u32, nHeads: u32, nKv: u32, scale: f32 }";

/** dk/dv: q, the keys and values, lse, dout, delta -> dk, dv. */
export const BACKWARD_KV_BINDINGS_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> kc: array<f32>;
@group(0) @binding(2) var<storage, read> vc: array<f32>;
@group(0) @binding(3) var<storage, read> lse: array<f32>;
@group(0) @binding(4) var<storage, read> dout: array<f32>;
@group(0) @binding(5) var<storage, read> delta: array<f32>;
@group(0) @binding(6) var<storage, read_write> dk: array<f32>;
@group(0) @binding(7) var<storage, read_write> dv: array<f32>;
${BACKWARD_PARAMS_WGSL}
@group(0) @binding(8) var<uniform> p: P;`;

/** dq: q, the keys and values, out, lse, dout -> dq. */
export const BACKWARD_Q_BINDINGS_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> kc: array<f32>;
@group(0) @binding(2) var<storage, read> vc: array<f32>;
@group(0) @binding(3) var<storage, read> out: array<f32>;
@group(0) @binding(4) var<storage, read> lse: array<f32>;
@group(0) @binding(5) var<storage, read> dout: array<f32>;
@group(0) @binding(6) var<storage, read_write> dq: array<f32>;
${BACKWARD_PARAMS_WGSL}
@group(0) @binding(7) var<uniform> p: P;`;
