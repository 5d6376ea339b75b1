/**
 * The query-blocked attention forward: one workgroup per (block of R query rows, chunk of HS
 * query heads of one kv group), with each 64-key tile of K and V staged once in workgroup memory
 * and shared by the block's R·HS (row, head) units. With R = 1 and HS the whole group it is the
 * decode kernel: one workgroup per (decode row, kv head), i.e. per (sequence, kv head).
 *
 * Same bits as the per-(row, head) kernel in gpu/attention.ts: staging changes where operands are
 * read from, not the arithmetic. Each unit walks the same 64-key tiles aligned at j = 0; lane l of
 * the unit computes key t·64 + l's dot product d ascending (`dot = dot + q[d]·k[d]`, the K tile
 * staged in slices of up to CH dims, the running dot kept across slices); max and sum use the same tree
 * pairs as gpu/reduce.ts over the 64 lanes (masked lanes contribute NEG_BIG and 0 as before); the
 * online-softmax update and the P·V sum (`a = a + p[jj]·v[jj][d]`, jj ascending over the tile,
 * then `acc = acc·alpha + a`) are the same expressions. V is staged in chunks of keys, the
 * running `a` kept across chunks.
 *
 * Rows of a block may belong to different sequences (packed prefill chunks, decode batches): the
 * block then runs one pass per distinct sequence, each staging that sequence's keys for the rows
 * that read them; every unit is updated in exactly one pass, so the grouping never shows in the
 * bits.
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import { FORWARD_BINDINGS_WGSL } from "./attention_bindings.ts";
import { f32, grid, kernel, type Recorder } from "./recorder.ts";

/** Keys per tile and lanes per (row, head) unit: the per-(row, head) kernel's TILE. */
const T = 64;
/** Units (row, head) per workgroup at most. */
const MAX_UNITS = 16;
/** Forward calls of at most this many rows (decode: one row per sequence) get one-row blocks. */
export const DECODE_MAX_ROWS = 32;

const NEG_BIG = "-3.0e38";

/** The block shape of one forward: rows per block, heads per block, staging width, threads. */
export interface BlockPlan {
  /** Query rows per workgroup. */
  R: number;
  /** Query heads per workgroup (a divisor of the kv group size). */
  HS: number;
  /** Dims per K slice and keys per V chunk staged at once. */
  CH: number;
  /** Units handled side by side by the 64-lane sets of the workgroup (divides R·HS). */
  UT: number;
  /** Workgroup memory the kernel declares (bytes). */
  bytes: number;
}

function largestDivisorAtMost(n: number, cap: number): number {
  for (let d = Math.min(n, cap); d > 1; d--) if (n % d === 0) return d;
  return 1;
}

/** Workgroup memory of a plan: q of every unit, probabilities and tree scratch, the K/V stage. */
function planBytes(U: number, hd: number, CH: number): number {
  return 4 * (U * hd + 2 * U * T + T * (Math.min(CH, hd) + 1)) + 64;
}

/**
 * Chooses the block shape for M rows with kv groups of `group` query heads, or null when even one
 * unit per workgroup does not fit the device (the caller keeps the per-(row, head) kernel).
 * Decode-sized calls (M <= {@link DECODE_MAX_ROWS}: one row per sequence) get one row per block;
 * larger ones (prefill, training: consecutive rows of one sequence) as many rows as fit.
 */
export function planBlocked(gpu: Gpu, M: number, group: number, hd: number): BlockPlan | null {
  const memLimit = gpu.device.limits.maxComputeWorkgroupStorageSize;
  const threadLimit = Math.min(256, gpu.device.limits.maxComputeInvocationsPerWorkgroup);
  // Largest sharing first: heads of the group, then rows; the wider staging slice first.
  for (let HS = Math.min(group, MAX_UNITS); HS >= 1; HS--) {
    if (group % HS !== 0) continue;
    const rMax = M <= DECODE_MAX_ROWS ? 1 : Math.max(1, Math.floor(MAX_UNITS / HS));
    for (let R = rMax; R >= 1; R--) {
      for (const CH of [32, 16]) {
        const U = R * HS;
        const UT = largestDivisorAtMost(U, Math.floor(threadLimit / T));
        const bytes = planBytes(U, hd, CH);
        if (bytes <= memLimit) return { R, HS, CH, UT, bytes };
      }
    }
  }
  return null;
}

function blockedWgsl(hd: number, plan: BlockPlan): string {
  const { R, HS, CH, UT } = plan;
  const U = R * HS, UPT = U / UT, ND = Math.ceil(hd / T);
  // K slices: KW dims of 64 keys (no wider than hd); V chunks: VK keys of VW dims (a lane each).
  const KW = Math.min(CH, hd), KS = KW + 1, VW = Math.min(T, hd);
  const VK = Math.min(T, Math.floor((T * KS) / VW));
  return /* wgsl */ `
${FORWARD_BINDINGS_WGSL}
const HD = ${hd}u;
const T = ${T}u;
const R = ${R}u;
const HS = ${HS}u;
const U = ${U}u;
const UT = ${UT}u;
const KW = ${KW}u;
const KS = ${KS}u; // K slice row stride (KW + 1: lanes read different banks)
const VW = ${VW}u;
const VK = ${VK}u;
const WG = ${UT * T}u;
var<workgroup> qs: array<f32, ${U * hd}>;
var<workgroup> probs: array<f32, ${U * T}>;
var<workgroup> red: array<f32, ${U * T}>;
var<workgroup> kv: array<f32, ${T * KS}>;
var<workgroup> rowSeq: array<u32, R>;
var<workgroup> rowLast: array<u32, R>;
var<workgroup> rowDone: array<u32, R>;
var<workgroup> seg: vec3u; // (found, sequence, largest last position among its rows)

// Tree passes over each unit's 64 lanes, the pairs of gpu/reduce.ts; \`max\` selects max or sum.
fn treeAll(l: u32, ut: u32, isMax: bool) {
  for (var s = T / 2u; s > 0u; s >>= 1u) {
    if (l < s) {
      for (var k = 0u; k < ${UPT}u; k++) {
        let i = (ut + k * UT) * T + l;
        if (isMax) { red[i] = max(red[i], red[i + s]); } else { red[i] = red[i] + red[i + s]; }
      }
    }
    workgroupBarrier();
  }
}

@compute @workgroup_size(${UT * T})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let headChunks = p.nHeads / HS;
  let id = wid.x + wid.y * nwg.x;
  if (id >= ((p.M + R - 1u) / R) * headChunks) { return; }
  let m0 = (id / headChunks) * R;
  let h0 = (id % headChunks) * HS;
  let g = h0 / (p.nHeads / p.nKv);
  let l = lid % T;
  let ut = lid / T;
  let kvStride = p.nKv * HD;
  if (lid < R) {
    let m = m0 + lid;
    if (m < p.M) {
      rowSeq[lid] = seq[m];
      rowLast[lid] = pos[m];
      rowDone[lid] = 0u;
    } else {
      rowSeq[lid] = 0u;
      rowLast[lid] = 0u;
      rowDone[lid] = 1u;
    }
  }
  for (var i = lid; i < U * HD; i += WG) {
    let u = i / HD;
    let m = m0 + u / HS;
    var x: f32 = 0.0;
    if (m < p.M) { x = q[(m * p.nHeads + h0 + u % HS) * HD + i % HD]; }
    qs[i] = x;
  }
  var mRun: array<f32, ${UPT}>;
  var lRun: array<f32, ${UPT}>;
  var acc: array<f32, ${UPT * ND}>;
  for (var k = 0u; k < ${UPT}u; k++) {
    mRun[k] = ${NEG_BIG};
    lRun[k] = 0.0;
  }
  loop {
    workgroupBarrier();
    if (lid == 0u) {
      var found = 0u;
      var sq = 0u;
      var hi = 0u;
      for (var r = 0u; r < R; r++) {
        if (rowDone[r] == 0u) {
          if (found == 0u) {
            found = 1u;
            sq = rowSeq[r];
          }
          if (rowSeq[r] == sq) { hi = max(hi, rowLast[r]); }
        }
      }
      seg = vec3u(found, sq, hi);
    }
    let info = workgroupUniformLoad(&seg);
    if (info.x == 0u) { break; }
    let base = info.y * p.S * kvStride + g * HD;
    let segLast = info.z;
    // Which of this thread's units read this sequence, and how far.
    var on: array<bool, ${UPT}>;
    var last: array<u32, ${UPT}>;
    for (var k = 0u; k < ${UPT}u; k++) {
      let r = (ut + k * UT) / HS;
      on[k] = rowDone[r] == 0u && rowSeq[r] == info.y;
      last[k] = rowLast[r];
    }
    let nTiles = segLast / T + 1u;
    for (var t = 0u; t < nTiles; t++) {
      let j = t * T + l;
      // Scores: K staged in slices of KW dims; each lane keeps its key's running dot.
      var dot = array<f32, ${UPT}>(); // explicit: naga may not re-zero a loop's locals
      for (var d0 = 0u; d0 < HD; d0 += KW) {
        workgroupBarrier();
        for (var i = lid; i < T * KW; i += WG) {
          let key = i / KW;
          let d = d0 + i % KW;
          var x: f32 = 0.0;
          if (t * T + key <= segLast && d < HD) { x = kc[base + (t * T + key) * kvStride + d]; }
          kv[key * KS + i % KW] = x;
        }
        workgroupBarrier();
        let dEnd = min(KW, HD - d0);
        for (var k = 0u; k < ${UPT}u; k++) {
          if (on[k] && j <= last[k]) {
            let qb = (ut + k * UT) * HD + d0;
            var s = dot[k];
            for (var dd = 0u; dd < dEnd; dd++) { s = s + qs[qb + dd] * kv[l * KS + dd]; }
            dot[k] = s;
          }
        }
      }
      var sc: array<f32, ${UPT}>;
      for (var k = 0u; k < ${UPT}u; k++) {
        sc[k] = ${NEG_BIG};
        if (on[k] && j <= last[k]) { sc[k] = dot[k] * p.scale; }
        red[(ut + k * UT) * T + l] = sc[k];
      }
      workgroupBarrier();
      treeAll(l, ut, true);
      var mNew: array<f32, ${UPT}>;
      for (var k = 0u; k < ${UPT}u; k++) {
        let u = ut + k * UT;
        mNew[k] = max(mRun[k], red[u * T]);
      }
      workgroupBarrier();
      for (var k = 0u; k < ${UPT}u; k++) {
        let u = ut + k * UT;
        var e: f32 = 0.0;
        if (on[k] && j <= last[k]) { e = exp(sc[k] - mNew[k]); }
        probs[u * T + l] = e;
        red[u * T + l] = e;
      }
      workgroupBarrier();
      treeAll(l, ut, false);
      var alpha: array<f32, ${UPT}>;
      for (var k = 0u; k < ${UPT}u; k++) {
        let u = ut + k * UT;
        alpha[k] = exp(mRun[k] - mNew[k]);
        if (on[k] && t * T <= last[k]) {
          lRun[k] = lRun[k] * alpha[k] + red[u * T];
          mRun[k] = mNew[k];
        }
      }
      // P·V: V staged in chunks of VK keys by VW dims; each lane keeps its dim's running sum.
      let tileEnd = min(T, segLast + 1u - t * T);
      for (var c = 0u; c < ${ND}u; c++) {
        let d = c * T + l;
        var a = array<f32, ${UPT}>();
        for (var j0 = 0u; j0 < tileEnd; j0 += VK) {
          workgroupBarrier();
          for (var i = lid; i < VK * VW; i += WG) {
            let key = j0 + i / VW;
            let dv = c * T + i % VW;
            var x: f32 = 0.0;
            if (key < tileEnd && dv < HD) { x = vc[base + (t * T + key) * kvStride + dv]; }
            kv[i] = x;
          }
          workgroupBarrier();
          for (var k = 0u; k < ${UPT}u; k++) {
            if (on[k] && t * T <= last[k] && d < HD) {
              let pb = (ut + k * UT) * T;
              let jEnd = min(min(T, last[k] + 1u - t * T), j0 + VK);
              var s = a[k];
              for (var jj = j0; jj < jEnd; jj++) { s = s + probs[pb + jj] * kv[(jj - j0) * VW + l]; }
              a[k] = s;
            }
          }
        }
        for (var k = 0u; k < ${UPT}u; k++) {
          if (on[k] && t * T <= last[k] && d < HD) {
            acc[k * ${ND}u + c] = acc[k * ${ND}u + c] * alpha[k] + a[k];
          }
        }
      }
    }
    workgroupBarrier();
    if (lid == 0u) {
      for (var r = 0u; r < R; r++) {
        if (rowSeq[r] == info.y) { rowDone[r] = 1u; }
      }
    }
  }
  for (var k = 0u; k < ${UPT}u; k++) {
    let u = ut + k * UT;
    let m = m0 + u / HS;
    if (m < p.M) {
      let row = m * p.nHeads + h0 + u % HS;
      for (var c = 0u; c < ${ND}u; c++) {
        let d = c * T + l;
        if (d < HD) { out[row * HD + d] = acc[k * ${ND}u + c] / lRun[k]; }
      }
      if (l == 0u) { lse[row] = mRun[k] + log(lRun[k]); }
    }
  }
}`;
}

/**
 * Records the query-blocked forward (see the module notes) with plan `plan`
 * ({@link planBlocked}); arguments as gpu/attention.ts's `attention`.
 */
export function attentionBlocked(
  rec: Recorder,
  plan: BlockPlan,
  bufs: [GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer],
  M: number,
  nHeads: number,
  nKv: number,
  hd: number,
  S: number,
  scale: number,
): void {
  const name = `attentionBlocked_hd${hd}_r${plan.R}_h${plan.HS}_c${plan.CH}_u${plan.UT}`;
  const k = kernel(rec.gpu, name, blockedWgsl(hd, plan));
  const groups = Math.ceil(M / plan.R) * (nHeads / plan.HS);
  rec.dispatch(k, bufs, [M, nHeads, nKv, S, f32(scale)], grid(rec.gpu, groups));
}
