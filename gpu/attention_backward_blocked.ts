/**
 * The blocked attention backward (training layout: M = B·S rows, row m is position m % S of
 * sequence m / S): dq query-blocked, one workgroup per (block of R query rows, chunk of HS heads
 * of one kv group) with each 64-key tile of K and V staged once in workgroup memory; dk/dv
 * key-blocked, one workgroup per (block of KB keys, kv head) with each 64-row tile of q and dout
 * staged once for the block's keys.
 *
 * Same bits as the per-row kernels in gpu/attention.ts. dq: each (row, head) walks the same
 * 64-key tiles aligned at j = 0, lane l computing key t·64 + l's s and dp d ascending
 * (`s = s + q[d]·k[d]`, `dp = dp + dout[d]·v[d]`, kept across staged slices), the same
 * dS expression, `a = a + dS[jj]·k[jj][d]` jj ascending over the tile and `acc = acc + a`.
 * dk/dv: each key j loops over its group's heads h ascending and, for each, over the query rows
 * i = j..S-1 in tiles of 64 aligned at j, the per-tile sums `av = av + P·dout`, `ak = ak + dS·q`
 * (i ascending from 0) added to the accumulators tile after tile: the keys of a block sweep the
 * same staged rows, each closing its running tile sum where its own tiles end.
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import { BACKWARD_KV_BINDINGS_WGSL, BACKWARD_Q_BINDINGS_WGSL } from "./attention_bindings.ts";
import { f32, grid, kernel, type Recorder } from "./recorder.ts";

const T = 64;
const MAX_UNITS = 16;

/** Block shape of the backward kernels (see the module notes). */
export interface BackwardPlan {
  /** dq: query rows per workgroup. */
  R: number;
  /** dq: query heads per workgroup (a divisor of the kv group size). */
  HS: number;
  /** dq: units side by side in the workgroup's 64-lane sets (divides R·HS). */
  UTq: number;
  /** dk/dv: keys per workgroup. */
  KB: number;
  /** dk/dv: units side by side (divides KB). */
  UTk: number;
  /** Dims per staged slice (scores) and keys or rows per staged chunk (sums). */
  CH: number;
}

function largestDivisorAtMost(n: number, cap: number): number {
  for (let d = Math.min(n, cap); d > 1; d--) if (n % d === 0) return d;
  return 1;
}

/**
 * Workgroup memory of a backward kernel with U units (bytes): two hd vectors and two 64-lane
 * rows per unit, two staged slices.
 */
export function backwardBlockBytes(U: number, hd: number, CH: number): number {
  return 4 * (2 * U * hd + 2 * U * T + 2 * T * (Math.min(CH, hd) + 1)) + 64;
}

/** Chooses the backward's block shapes, or null when one unit per workgroup does not fit. */
export function planBackwardBlocked(gpu: Gpu, group: number, hd: number): BackwardPlan | null {
  const memLimit = gpu.device.limits.maxComputeWorkgroupStorageSize;
  const sets = Math.floor(Math.min(256, gpu.device.limits.maxComputeInvocationsPerWorkgroup) / T);
  const fit = (U: number) => [32, 16].find((CH) => backwardBlockBytes(U, hd, CH) <= memLimit);
  let q: { R: number; HS: number; CH: number } | null = null;
  for (let HS = Math.min(group, MAX_UNITS); HS >= 1 && !q; HS--) {
    if (group % HS !== 0) continue;
    for (let R = Math.max(1, Math.floor(MAX_UNITS / HS)); R >= 1 && !q; R--) {
      const CH = fit(R * HS);
      if (CH) q = { R, HS, CH };
    }
  }
  // Key blocks with a divisor that fills several 64-lane sets (11 keys would run on 64 lanes).
  const KB = [16, 12, 8, 6, 4, 2, 1].find((n) => n <= MAX_UNITS && fit(n) !== undefined) ?? 1;
  const chK = fit(KB);
  if (!q || chK === undefined) return null;
  const CH = Math.min(q.CH, chK);
  return {
    R: q.R,
    HS: q.HS,
    UTq: largestDivisorAtMost(q.R * q.HS, sets),
    KB,
    UTk: largestDivisorAtMost(KB, sets),
    CH,
  };
}

/** Slices of KW dims for 64 keys or rows (stride KS); chunks of VK keys or rows of VW dims. */
function widths(hd: number, CH: number) {
  const KW = Math.min(CH, hd), KS = KW + 1, VW = Math.min(T, hd);
  return { KW, KS, VW, VK: Math.min(T, Math.floor((T * KS) / VW)) };
}

const HEADER = (hd: number, CH: number, UT: number, U: number) => {
  const { KW, KS, VW, VK } = widths(hd, CH);
  return /* wgsl */ `
const HD = ${hd}u;
const T = ${T}u;
const U = ${U}u;
const UT = ${UT}u;
const KW = ${KW}u;
const KS = ${KS}u; // slice row stride (KW + 1: lanes read different banks)
const VW = ${VW}u;
const VK = ${VK}u;
const WG = ${UT * T}u;`;
};

function dqWgsl(hd: number, plan: BackwardPlan): string {
  const { R, HS, UTq: UT, CH } = plan;
  const U = R * HS, UPT = U / UT, ND = Math.ceil(hd / T);
  return /* wgsl */ `
${BACKWARD_Q_BINDINGS_WGSL}
${HEADER(hd, CH, UT, U)}
const R = ${R}u;
const HS = ${HS}u;
var<workgroup> qs: array<f32, ${U * hd}>;
var<workgroup> dos: array<f32, ${U * hd}>;
var<workgroup> dsc: array<f32, ${U * T}>;
var<workgroup> ks: array<f32, ${T * widths(hd, CH).KS}>;
var<workgroup> vs: array<f32, ${T * widths(hd, CH).KS}>;
@compute @workgroup_size(${UT * T})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let headChunks = p.nHeads / HS;
  let rowBlocks = (p.S + R - 1u) / R;
  let id = wid.x + wid.y * nwg.x;
  if (id >= p.B * rowBlocks * headChunks) { return; }
  let b = id / (rowBlocks * headChunks);
  let i0 = ((id / headChunks) % rowBlocks) * R;
  let h0 = (id % headChunks) * HS;
  let g = h0 / (p.nHeads / p.nKv);
  let l = lid % T;
  let ut = lid / T;
  let kvStride = p.nKv * HD;
  let base = b * p.S * kvStride + g * HD;
  for (var x = lid; x < U * HD; x += WG) {
    let u = x / HD;
    let i = i0 + u / HS;
    var a: f32 = 0.0;
    var c: f32 = 0.0;
    if (i < p.S) {
      let at = ((b * p.S + i) * p.nHeads + h0 + u % HS) * HD + x % HD;
      a = q[at];
      c = dout[at];
    }
    qs[x] = a;
    dos[x] = c;
  }
  workgroupBarrier();
  var delta: array<f32, ${UPT}>;
  var rowLse: array<f32, ${UPT}>;
  var last: array<u32, ${UPT}>;
  var on: array<bool, ${UPT}>;
  for (var k = 0u; k < ${UPT}u; k++) {
    let u = ut + k * UT;
    let i = i0 + u / HS;
    on[k] = i < p.S;
    last[k] = i;
    if (on[k]) {
      let row = (b * p.S + i) * p.nHeads + h0 + u % HS;
      // d ascending, as the delta kernel.
      var dl: f32 = 0.0;
      for (var d = 0u; d < HD; d++) { dl = dl + out[row * HD + d] * dos[u * HD + d]; }
      delta[k] = dl;
      rowLse[k] = lse[row];
    }
  }
  var acc = array<f32, ${UPT * ND}>();
  let blockLast = min(i0 + R, p.S) - 1u;
  let nTiles = blockLast / T + 1u;
  for (var t = 0u; t < nTiles; t++) {
    let j = t * T + l;
    var s = array<f32, ${UPT}>(); // explicit: naga may not re-zero a loop's locals
    var dp = array<f32, ${UPT}>();
    for (var d0 = 0u; d0 < HD; d0 += KW) {
      workgroupBarrier();
      for (var x = lid; x < T * KW; x += WG) {
        let key = x / KW;
        let d = d0 + x % KW;
        var a: f32 = 0.0;
        var c: f32 = 0.0;
        if (t * T + key <= blockLast && d < HD) {
          a = kc[base + (t * T + key) * kvStride + d];
          c = vc[base + (t * T + key) * kvStride + d];
        }
        ks[key * KS + x % KW] = a;
        vs[key * KS + x % KW] = c;
      }
      workgroupBarrier();
      let dEnd = min(KW, HD - d0);
      for (var k = 0u; k < ${UPT}u; k++) {
        if (on[k] && j <= last[k]) {
          let qb = (ut + k * UT) * HD + d0;
          var a = s[k];
          var c = dp[k];
          for (var dd = 0u; dd < dEnd; dd++) {
            a = a + qs[qb + dd] * ks[l * KS + dd];
            c = c + dos[qb + dd] * vs[l * KS + dd];
          }
          s[k] = a;
          dp[k] = c;
        }
      }
    }
    for (var k = 0u; k < ${UPT}u; k++) {
      var ds: f32 = 0.0;
      if (on[k] && j <= last[k]) { ds = exp(s[k] * p.scale - rowLse[k]) * (dp[k] - delta[k]); }
      dsc[(ut + k * UT) * T + l] = ds;
    }
    let tileEnd = min(T, blockLast + 1u - t * T);
    for (var c = 0u; c < ${ND}u; c++) {
      let d = c * T + l;
      var a = array<f32, ${UPT}>();
      for (var j0 = 0u; j0 < tileEnd; j0 += VK) {
        workgroupBarrier();
        for (var x = lid; x < VK * VW; x += WG) {
          let key = j0 + x / VW;
          let dk = c * T + x % VW;
          var v: f32 = 0.0;
          if (key < tileEnd && dk < HD) { v = kc[base + (t * T + key) * kvStride + dk]; }
          ks[x] = v;
        }
        workgroupBarrier();
        for (var k = 0u; k < ${UPT}u; k++) {
          if (on[k] && t * T <= last[k] && d < HD) {
            let pb = (ut + k * UT) * T;
            let jEnd = min(min(T, last[k] + 1u - t * T), j0 + VK);
            var sum = a[k];
            for (var jj = j0; jj < jEnd; jj++) { sum = sum + dsc[pb + jj] * ks[(jj - j0) * VW + l]; }
            a[k] = sum;
          }
        }
      }
      for (var k = 0u; k < ${UPT}u; k++) {
        if (on[k] && t * T <= last[k] && d < HD) {
          acc[k * ${ND}u + c] = acc[k * ${ND}u + c] + a[k];
        }
      }
    }
  }
  for (var k = 0u; k < ${UPT}u; k++) {
    let u = ut + k * UT;
    if (on[k]) {
      let row = (b * p.S + last[k]) * p.nHeads + h0 + u % HS;
      for (var c = 0u; c < ${ND}u; c++) {
        let d = c * T + l;
        if (d < HD) { dq[row * HD + d] = acc[k * ${ND}u + c] * p.scale; }
      }
    }
  }
}`;
}

function dkvWgsl(hd: number, plan: BackwardPlan): string {
  const { KB, UTk: UT, CH } = plan;
  const U = KB, UPT = U / UT, ND = Math.ceil(hd / T);
  return /* wgsl */ `
${BACKWARD_KV_BINDINGS_WGSL}
${HEADER(hd, CH, UT, U)}
var<workgroup> ks: array<f32, ${U * hd}>;
var<workgroup> vs: array<f32, ${U * hd}>;
var<workgroup> probs: array<f32, ${U * T}>;
var<workgroup> dsc: array<f32, ${U * T}>;
var<workgroup> qst: array<f32, ${T * widths(hd, CH).KS}>;
var<workgroup> dst: array<f32, ${T * widths(hd, CH).KS}>;
@compute @workgroup_size(${UT * T})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let keyBlocks = (p.S + U - 1u) / U;
  let id = wid.x + wid.y * nwg.x; // (b * keyBlocks + block) * nKv + g
  if (id >= p.B * keyBlocks * p.nKv) { return; }
  let g = id % p.nKv;
  let b = (id / p.nKv) / keyBlocks;
  let j0 = ((id / p.nKv) % keyBlocks) * U;
  let l = lid % T;
  let ut = lid / T;
  for (var x = lid; x < U * HD; x += WG) {
    let j = j0 + x / HD;
    var a: f32 = 0.0;
    var c: f32 = 0.0;
    if (j < p.S) {
      let at = ((b * p.S + j) * p.nKv + g) * HD + x % HD;
      a = kc[at];
      c = vc[at];
    }
    ks[x] = a;
    vs[x] = c;
  }
  let group = p.nHeads / p.nKv;
  var accK = array<f32, ${UPT * ND}>();
  var accV = array<f32, ${UPT * ND}>();
  var ak = array<f32, ${UPT * ND}>();
  var av = array<f32, ${UPT * ND}>();
  for (var hi = 0u; hi < group; hi++) {
    let h = g * group + hi;
    for (var i0 = j0; i0 < p.S; i0 += T) {
      let i = i0 + l;
      let rh = (b * p.S + i) * p.nHeads + h;
      var s = array<f32, ${UPT}>(); // explicit: naga may not re-zero a loop's locals
      var dp = array<f32, ${UPT}>();
      for (var d0 = 0u; d0 < HD; d0 += KW) {
        workgroupBarrier();
        for (var x = lid; x < T * KW; x += WG) {
          let r = i0 + x / KW;
          let d = d0 + x % KW;
          var a: f32 = 0.0;
          var c: f32 = 0.0;
          if (r < p.S && d < HD) {
            let at = ((b * p.S + r) * p.nHeads + h) * HD + d;
            a = q[at];
            c = dout[at];
          }
          qst[(x / KW) * KS + x % KW] = a;
          dst[(x / KW) * KS + x % KW] = c;
        }
        workgroupBarrier();
        let dEnd = min(KW, HD - d0);
        for (var k = 0u; k < ${UPT}u; k++) {
          let j = j0 + ut + k * UT;
          if (j < p.S && i >= j && i < p.S) {
            let kb = (ut + k * UT) * HD + d0;
            var a = s[k];
            var c = dp[k];
            for (var dd = 0u; dd < dEnd; dd++) {
              a = a + qst[l * KS + dd] * ks[kb + dd];
              c = c + dst[l * KS + dd] * vs[kb + dd];
            }
            s[k] = a;
            dp[k] = c;
          }
        }
      }
      for (var k = 0u; k < ${UPT}u; k++) {
        let j = j0 + ut + k * UT;
        var pr: f32 = 0.0;
        var ds: f32 = 0.0;
        if (j < p.S && i >= j && i < p.S) {
          pr = exp(s[k] * p.scale - lse[rh]);
          ds = pr * (dp[k] - delta[rh]);
        }
        probs[(ut + k * UT) * T + l] = pr;
        dsc[(ut + k * UT) * T + l] = ds;
      }
      let rowsHere = min(T, p.S - i0);
      for (var c = 0u; c < ${ND}u; c++) {
        let d = c * T + l;
        for (var r0 = 0u; r0 < rowsHere; r0 += VK) {
          workgroupBarrier();
          for (var x = lid; x < VK * VW; x += WG) {
            let r = r0 + x / VW;
            let dd = c * T + x % VW;
            var a: f32 = 0.0;
            var e: f32 = 0.0;
            if (r < rowsHere && dd < HD) {
              let at = ((b * p.S + i0 + r) * p.nHeads + h) * HD + dd;
              a = q[at];
              e = dout[at];
            }
            qst[x] = a;
            dst[x] = e;
          }
          workgroupBarrier();
          for (var k = 0u; k < ${UPT}u; k++) {
            let j = j0 + ut + k * UT;
            if (j < p.S && d < HD) {
              let pb = (ut + k * UT) * T;
              let ai = k * ${ND}u + c;
              var sv = av[ai];
              var sk = ak[ai];
              let rEnd = min(rowsHere, r0 + VK);
              for (var r = r0; r < rEnd; r++) {
                let row = i0 + r;
                if (row >= j) {
                  if (row > j && (row - j) % T == 0u) { // key j's next tile starts: close the last
                    accV[ai] = accV[ai] + sv;
                    accK[ai] = accK[ai] + sk;
                    sv = 0.0;
                    sk = 0.0;
                  }
                  sv = sv + probs[pb + r] * dst[(r - r0) * VW + l];
                  sk = sk + dsc[pb + r] * qst[(r - r0) * VW + l];
                }
              }
              av[ai] = sv;
              ak[ai] = sk;
            }
          }
        }
      }
    }
    // The head's last tile.
    for (var k = 0u; k < ${UPT}u; k++) {
      for (var c = 0u; c < ${ND}u; c++) {
        let ai = k * ${ND}u + c;
        accV[ai] = accV[ai] + av[ai];
        accK[ai] = accK[ai] + ak[ai];
        av[ai] = 0.0;
        ak[ai] = 0.0;
      }
    }
  }
  for (var k = 0u; k < ${UPT}u; k++) {
    let j = j0 + ut + k * UT;
    if (j < p.S) {
      let at = ((b * p.S + j) * p.nKv + g) * HD;
      for (var c = 0u; c < ${ND}u; c++) {
        let d = c * T + l;
        if (d < HD) {
          dk[at + d] = accK[k * ${ND}u + c] * p.scale;
          dv[at + d] = accV[k * ${ND}u + c];
        }
      }
    }
  }
}`;
}

/**
 * Records the blocked dq and dk/dv kernels (see the module notes); `delta` holds D[m, h] from
 * gpu/attention.ts's delta kernel (the first M·nHeads floats of the dq buffer, read by dk/dv
 * before dq overwrites them). Arguments as gpu/attention.ts's `attentionBackward`.
 */
export function attentionBackwardBlocked(
  rec: Recorder,
  plan: BackwardPlan,
  bufs: {
    q: GPUBuffer;
    kc: GPUBuffer;
    vc: GPUBuffer;
    out: GPUBuffer;
    lse: GPUBuffer;
    dout: GPUBuffer;
    dq: GPUBuffer;
    dk: GPUBuffer;
    dv: GPUBuffer;
  },
  B: number,
  S: number,
  nHeads: number,
  nKv: number,
  hd: number,
  scale: number,
): void {
  const gpu = rec.gpu;
  const { q, kc, vc, out, lse, dout, dq, dk, dv } = bufs;
  const params = [B, S, nHeads, nKv, f32(scale)];
  const tag = `hd${hd}_c${plan.CH}`;
  rec.dispatch(
    kernel(gpu, `attentionBackwardKvBlocked_${tag}_k${plan.KB}_u${plan.UTk}`, dkvWgsl(hd, plan)),
    [q, kc, vc, lse, dout, dq, dk, dv],
    params,
    grid(gpu, B * Math.ceil(S / plan.KB) * nKv),
  );
  const qName = `attentionBackwardQBlocked_${tag}_r${plan.R}_h${plan.HS}_u${plan.UTq}`;
  rec.dispatch(
    kernel(gpu, qName, dqWgsl(hd, plan)),
    [q, kc, vc, out, lse, dout, dq],
    params,
    grid(gpu, B * Math.ceil(S / plan.R) * (nHeads / plan.HS)),
  );
}
