/**
 * Token embedding lookup and its backward.
 *
 * The backward is a deterministic scatter-add without atomics: the CPU, which knows the tokens,
 * groups positions by token id (ascending position), uploads those index lists, and one
 * workgroup per distinct token sums its positions' gradient rows in ascending order.
 *
 * {@link embeddingBf16} is the forward over a packed BF16 table (gpu/bf16.ts), from the same
 * WGSL with only the table read changed: it copies exactly the widened values.
 *
 * @module
 */
import { uploadBuffer, writeBuffer } from "./buffers.ts";
import { grid, kernel, type Recorder } from "./recorder.ts";
import { rowWindows } from "./window.ts";
import { widenBf16Wgsl } from "./bf16.ts";

const WG = 256;

/** The forward lookup; `packedBf16`: the table holds packed BF16 words instead of f32. */
const forwardWgsl = (packedBf16: boolean) => /* wgsl */ `
@group(0) @binding(0) var<storage, read> tokens: array<u32>;
@group(0) @binding(1) var<storage, read> table: array<${packedBf16 ? "u32" : "f32"}>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
// This dispatch's table holds rows [v0, v1) (a window of a table past one binding); the last
// window also writes the NaN rows of tokens past the table.
struct P { T: u32, D: u32, v0: u32, v1: u32, last: u32 }
@group(0) @binding(3) var<uniform> p: P;
${packedBf16 ? widenBf16Wgsl("tableBf16", "table") : ""}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) t: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.T) { return; }
  let tok = tokens[row];
  let inWindow = tok >= p.v0 && tok < p.v1;
  // A token past the table's end gives NaN rather than some other row.
  if (!inWindow && !(p.last == 1u && tok >= p.v1)) { return; }
  let r = tok - p.v0;
  for (var d = t; d < p.D; d += ${WG}u) {
    var v = bitcast<f32>(0x7fc00000u + (tok & 0u));
    if (inWindow) { v = ${packedBf16 ? "tableBf16(r * p.D + d)" : "table[r * p.D + d]"}; }
    y[row * p.D + d] = v;
  }
}`;

/**
 * y[t,:] = table[tokens[t],:] for T tokens (u32) of a [V, D] table. A token outside the table
 * yields a NaN row. Records only.
 */
export function embedding(
  rec: Recorder,
  tokens: GPUBuffer,
  table: GPUBuffer,
  y: GPUBuffer,
  T: number,
  D: number,
): void {
  if (!(D > 0)) throw new Error(`embedding: D must be positive, got ${D}`);
  gather(rec, "embedding", false, tokens, table, y, T, D);
}

/**
 * {@link embedding} over a packed BF16 table [V, D] (gpu/bf16.ts): y[t,:] = the exactly widened
 * row tokens[t], so it equals `embedding` on the table widened to f32 bit for bit. A token
 * outside the table yields a NaN row. Records only.
 */
export function embeddingBf16(
  rec: Recorder,
  tokens: GPUBuffer,
  tablePacked: GPUBuffer,
  y: GPUBuffer,
  T: number,
  D: number,
): void {
  if (!(D > 0)) throw new Error(`embeddingBf16: D must be positive, got ${D}`);
  gather(rec, "embeddingBf16", true, tokens, tablePacked, y, T, D);
}

/** The lookup, once per window of table rows when the table is past one binding. */
function gather(
  rec: Recorder,
  name: string,
  packed: boolean,
  tokens: GPUBuffer,
  table: GPUBuffer,
  y: GPUBuffer,
  T: number,
  D: number,
): void {
  const k = kernel(rec.gpu, name, forwardWgsl(packed));
  const rowBytes = packed ? D * 2 : D * 4;
  // The table's rows as the buffer holds them (the kernel's old arrayLength bound).
  const V = Math.floor(table.size / rowBytes);
  const windows = rowWindows(rec.gpu, table, V, rowBytes);
  if (windows.length > 1 && rowBytes % 4 !== 0) {
    throw new Error(`${name}: a table past one binding needs whole words per row (D even)`);
  }
  windows.forEach((w, i) => {
    const params = [T, D, w.row0, w.row0 + w.rows, i === windows.length - 1 ? 1 : 0];
    rec.dispatch(k, [tokens, w.binding, y], params, grid(rec.gpu, T));
  });
}

const BACKWARD_WGSL = /* wgsl */ `
// plan: [token, start, count] per group, then the positions of all groups.
@group(0) @binding(0) var<storage, read> plan: array<u32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dtable: array<f32>;
struct P { groups: u32, D: u32 }
@group(0) @binding(3) var<uniform> p: P;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) t: u32) {
  let g = wid.x + wid.y * nwg.x;
  if (g >= p.groups) { return; }
  let tok = plan[3u * g];
  let start = 3u * p.groups + plan[3u * g + 1u];
  let count = plan[3u * g + 2u];
  for (var d = t; d < p.D; d += ${WG}u) {
    var s = 0.0;
    for (var i = 0u; i < count; i++) { s += dy[plan[start + i] * p.D + d]; }
    dtable[tok * p.D + d] = dtable[tok * p.D + d] + s;
  }
}`;

/** Per-recorder upload buffer for the grouping plan, reused once the recorder has submitted. */
const planCache = new WeakMap<Recorder, { buf: GPUBuffer; submitCount: number }>();

function uploadPlan(rec: Recorder, plan: Uint32Array): GPUBuffer {
  const hit = planCache.get(rec);
  // queue.writeBuffer runs at once, before this recorder's pending work, so a buffer may only
  // be rewritten after the submission that reads it.
  if (hit && hit.submitCount !== rec.submitCount && hit.buf.size >= plan.byteLength) {
    writeBuffer(rec.gpu, hit.buf, plan);
    hit.submitCount = rec.submitCount;
    return hit.buf;
  }
  const buf = uploadBuffer(rec.gpu, plan, "embeddingBackward plan");
  planCache.set(rec, { buf, submitCount: rec.submitCount });
  return buf;
}

/**
 * dtable[v,:] += Σ_{t: tokens[t]=v} dy[t,:], summed in ascending t (accumulates: the caller
 * zeroes). `tokensHost` holds the same T token ids the forward used. Records only (uploads the
 * grouping plan through the queue).
 */
export function embeddingBackward(
  rec: Recorder,
  tokensHost: Uint32Array,
  dy: GPUBuffer,
  dtable: GPUBuffer,
  T: number,
  D: number,
): void {
  if (!(D > 0)) throw new Error(`embeddingBackward: D must be positive, got ${D}`);
  if (tokensHost.length < T) {
    throw new Error(`embeddingBackward: tokensHost has ${tokensHost.length} ids, need T = ${T}`);
  }
  const rows = Math.floor(dtable.size / 4 / D);
  const byToken = new Map<number, number[]>();
  for (let t = 0; t < T; t++) {
    const v = tokensHost[t];
    if (v >= rows) {
      throw new Error(
        `embeddingBackward: tokensHost[${t}] = ${v} is outside dtable (${rows} rows)`,
      );
    }
    let list = byToken.get(v);
    if (!list) byToken.set(v, list = []);
    list.push(t);
  }
  const G = byToken.size;
  if (G === 0) return;
  const plan = new Uint32Array(3 * G + T);
  let g = 0, start = 0;
  for (const [v, list] of byToken) {
    plan.set([v, start, list.length], 3 * g);
    plan.set(list, 3 * G + start);
    start += list.length;
    g++;
  }
  const k = kernel(rec.gpu, "embeddingBackward", BACKWARD_WGSL);
  rec.dispatch(k, [uploadPlan(rec, plan), dy, dtable], [G, D], grid(rec.gpu, G));
}
