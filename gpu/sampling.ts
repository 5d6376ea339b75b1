/**
 * Token sampling on the GPU: greedy, temperature and top-p (nucleus), one workgroup per row,
 * with the counter-based RNG of rng.ts keyed by (seed, stream, row id, position).
 *
 * Per row, with z = logits / temperature and e_v = exp(z_v - max z) (all f32):
 * 1. Nucleus. The smallest set of most probable tokens whose mass reaches topP·Σe is
 *    {v : e_v >= τ} for the largest τ with Σ_{e_v >= τ} e_v >= topP·Σe. Non-negative f32 values
 *    order like their bit patterns, so τ is found exactly, without sorting, by bisection over
 *    the u32 bit patterns in [0, bits(1.0)] (31 fixed steps; each step is one pass over the row
 *    with a fixed-order reduction). topP >= 1 keeps every token.
 * 2. Draw. u = uniform01(philox word 0) (see rng.ts). Thread t owns the contiguous chunk
 *    t·⌈V/256⌉..; chunk masses are summed in v order; thread 0 walks the chunks in order to the
 *    one holding u·Σ, and that chunk's owner walks its tokens in order to the first whose running
 *    sum exceeds the remainder. Rounding can only push the walk past the end, where the last
 *    token with nonzero mass is taken; a token outside the nucleus is never returned.
 * Greedy (temperature 0) is the argmax, lowest index on ties.
 *
 * The sampled token's log-probability is not computed here: callers run tokenLogprobs on the
 * sampled tokens so it is bit-identical to training.
 *
 * @module
 */
import { f32, grid, kernel, type Recorder } from "./recorder.ts";
import { PHILOX_WGSL, seedKey } from "./rng.ts";
import { serialTreeReduceWgsl } from "./reduce.ts";
import { useSerial } from "./serial.ts";

/** Sampling settings. */
export interface SamplingOptions {
  /** 0 = greedy; otherwise softmax(logits / temperature). */
  temperature: number;
  /** Nucleus mass in (0, 1]; 1 keeps every token. */
  topP: number;
  /** RNG seed, an integer in 0..2^53-1. */
  seed: number;
  /** RNG stream (u32), e.g. one per generation phase, so phases draw independent numbers. */
  stream: number;
}

const WG = 256;

/** The bindings, parameters and random numbers both sampler styles share. */
const SAMPLE_BINDINGS_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> tokens: array<u32>;
@group(0) @binding(2) var<storage, read> positions: array<u32>;
@group(0) @binding(3) var<storage, read> rowIds: array<u32>;
struct P {
  M: u32, V: u32, greedy: u32, useRowIds: u32,
  temperature: f32, topP: f32, k0: u32, k1: u32, stream: u32,
}
@group(0) @binding(4) var<uniform> p: P;
${PHILOX_WGSL}`;

const SAMPLE_WGSL = /* wgsl */ `
${SAMPLE_BINDINGS_WGSL}
const WG = ${WG}u;
const NONE = 0xffffffffu;
var<workgroup> redF: array<f32, WG>;
var<workgroup> redI: array<u32, WG>;
var<workgroup> chunkMass: array<f32, WG>;
var<workgroup> pickChunk: u32;
var<workgroup> pickRest: f32;
var<workgroup> bcast: f32;

fn treeMax(lid: u32, x: f32) -> f32 {
  redF[lid] = x;
  workgroupBarrier();
  for (var w = WG / 2u; w > 0u; w = w >> 1u) {
    if (lid < w) { redF[lid] = max(redF[lid], redF[lid + w]); }
    workgroupBarrier();
  }
  if (lid == 0u) { bcast = redF[0]; }
  return workgroupUniformLoad(&bcast);
}
fn treeSum(lid: u32, x: f32) -> f32 {
  redF[lid] = x;
  workgroupBarrier();
  for (var w = WG / 2u; w > 0u; w = w >> 1u) {
    if (lid < w) { redF[lid] = redF[lid] + redF[lid + w]; }
    workgroupBarrier();
  }
  if (lid == 0u) { bcast = redF[0]; }
  return workgroupUniformLoad(&bcast);
}

// Unnormalised probability of token v of the row at base, given the row max of z.
fn weight(base: u32, v: u32, zmax: f32) -> f32 {
  return exp(logits[base + v] / p.temperature - zmax);
}

// Mass of the tokens whose weight has bit pattern >= threshold (strided, fixed tree order).
fn massAbove(lid: u32, base: u32, zmax: f32, threshold: u32) -> f32 {
  var s: f32 = 0.0;
  for (var v = lid; v < p.V; v += WG) {
    let e = weight(base, v, zmax);
    if (bitcast<u32>(e) >= threshold) { s = s + e; }
  }
  return treeSum(lid, s);
}

fn argmaxRow(lid: u32, base: u32) -> u32 {
  var best: f32 = 0.0;
  var idx = NONE;
  for (var v = lid; v < p.V; v += WG) {
    let x = logits[base + v];
    if (idx == NONE || x > best) { best = x; idx = v; }
  }
  redF[lid] = best;
  redI[lid] = idx;
  workgroupBarrier();
  for (var w = WG / 2u; w > 0u; w = w >> 1u) {
    if (lid < w) {
      let a = redF[lid];
      let ia = redI[lid];
      let b = redF[lid + w];
      let ib = redI[lid + w];
      if (ib != NONE && (ia == NONE || b > a || (b == a && ib < ia))) {
        redF[lid] = b;
        redI[lid] = ib;
      }
    }
    workgroupBarrier();
  }
  return redI[0];
}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let m = wid.x + wid.y * nwg.x;
  if (m >= p.M) { return; }
  let base = m * p.V;
  if (p.greedy == 1u) {
    let t = argmaxRow(lid, base);
    if (lid == 0u) { tokens[m] = select(t, 0u, t == NONE); }
    return;
  }
  var localMax: f32 = -3.0e38;
  for (var v = lid; v < p.V; v += WG) { localMax = max(localMax, logits[base + v] / p.temperature); }
  let zmax = treeMax(lid, localMax);

  var threshold = 0u;
  if (p.topP < 1.0) {
    let goal = p.topP * massAbove(lid, base, zmax, 0u);
    var lo = 0u;                    // mass(lo) >= goal always
    var hi = bitcast<u32>(1.0) + 1u; // mass(hi) = 0 < goal (every weight is <= 1)
    for (var it = 0u; it < 31u; it++) {
      let mid = lo + (hi - lo) / 2u;
      if (massAbove(lid, base, zmax, mid) >= goal) { lo = mid; } else { hi = mid; }
    }
    threshold = lo;
  }

  // Chunk masses in v order.
  let chunk = (p.V + WG - 1u) / WG;
  let start = min(lid * chunk, p.V);
  let end = min(start + chunk, p.V);
  var s: f32 = 0.0;
  for (var v = start; v < end; v++) {
    let e = weight(base, v, zmax);
    if (bitcast<u32>(e) >= threshold) { s = s + e; }
  }
  chunkMass[lid] = s;
  workgroupBarrier();
  if (lid == 0u) {
    var total: f32 = 0.0;
    for (var c = 0u; c < WG; c++) { total = total + chunkMass[c]; }
    let rowId = select(m, rowIds[m], p.useRowIds == 1u);
    let ctr = vec4u(rowId, positions[m], p.stream, 0u);
    let r = uniform01(philox4x32(ctr, vec2u(p.k0, p.k1)).x) * total;
    var acc: f32 = 0.0;
    var owner = NONE;
    var lastNonEmpty = 0u;
    for (var c = 0u; c < WG; c++) {
      let cm = chunkMass[c];
      if (cm > 0.0) {
        lastNonEmpty = c;
        if (owner == NONE && r < acc + cm) {
          owner = c;
          pickChunk = c;
          pickRest = r - acc;
        }
      }
      acc = acc + cm;
    }
    // Past the end by rounding: the remainder equals the whole chunk, so its walk falls through
    // to its last token with nonzero mass.
    if (owner == NONE) {
      pickChunk = lastNonEmpty;
      pickRest = chunkMass[lastNonEmpty];
    }
  }
  workgroupBarrier();
  if (lid == pickChunk) {
    let rest = pickRest;
    var run: f32 = 0.0;
    var chosen = NONE;
    var lastPositive = NONE;
    for (var v = start; v < end; v++) {
      let e = weight(base, v, zmax);
      if (bitcast<u32>(e) >= threshold && e > 0.0) {
        run = run + e;
        lastPositive = v;
        if (rest < run) { chosen = v; break; }
      }
    }
    tokens[m] = select(chosen, lastPositive, chosen == NONE);
  }
}`;

/** Rows per workgroup in the serial style (one invocation per row). */
const SERIAL_WG = 16;

/**
 * The same sampler for CPU adapters (the "serial" kernel style, gpu/serial.ts): one invocation
 * per row replays the workgroup kernel's lanes in order, with private arrays for its lane
 * partials and the same tree pairs (gpu/reduce.ts), so it draws the same tokens with no barriers
 * (tests/gpu_sampling_test.ts compares the two styles).
 */
const SAMPLE_SERIAL_WGSL = /* wgsl */ `
${SAMPLE_BINDINGS_WGSL}
${serialTreeReduceWgsl(WG)}
const WG = ${WG}u;
const NONE = 0xffffffffu;

fn weight(base: u32, v: u32, zmax: f32) -> f32 {
  return exp(logits[base + v] / p.temperature - zmax);
}

// The workgroup kernel's massAbove: strided lane sums, then the tree.
fn massAbove(base: u32, zmax: f32, threshold: u32) -> f32 {
  var red: array<f32, WG>;
  for (var lid = 0u; lid < WG; lid++) {
    var s: f32 = 0.0;
    for (var v = lid; v < p.V; v += WG) {
      let e = weight(base, v, zmax);
      if (bitcast<u32>(e) >= threshold) { s = s + e; }
    }
    red[lid] = s;
  }
  return serialTreeSum(&red);
}

fn argmaxRow(base: u32) -> u32 {
  var redF: array<f32, WG>;
  var redI: array<u32, WG>;
  for (var lid = 0u; lid < WG; lid++) {
    var best: f32 = 0.0;
    var idx = NONE;
    for (var v = lid; v < p.V; v += WG) {
      let x = logits[base + v];
      if (idx == NONE || x > best) { best = x; idx = v; }
    }
    redF[lid] = best;
    redI[lid] = idx;
  }
  for (var w = WG / 2u; w > 0u; w = w >> 1u) {
    for (var lid = 0u; lid < w; lid++) {
      let a = redF[lid];
      let ia = redI[lid];
      let b = redF[lid + w];
      let ib = redI[lid + w];
      if (ib != NONE && (ia == NONE || b > a || (b == a && ib < ia))) {
        redF[lid] = b;
        redI[lid] = ib;
      }
    }
  }
  return redI[0];
}

@compute @workgroup_size(${SERIAL_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let m = (wid.x + wid.y * nwg.x) * ${SERIAL_WG}u + lane;
  if (m >= p.M) { return; }
  let base = m * p.V;
  if (p.greedy == 1u) {
    let t = argmaxRow(base);
    tokens[m] = select(t, 0u, t == NONE);
    return;
  }
  var red: array<f32, WG>;
  for (var lid = 0u; lid < WG; lid++) {
    var localMax: f32 = -3.0e38;
    for (var v = lid; v < p.V; v += WG) { localMax = max(localMax, logits[base + v] / p.temperature); }
    red[lid] = localMax;
  }
  let zmax = serialTreeMax(&red);

  var threshold = 0u;
  if (p.topP < 1.0) {
    let goal = p.topP * massAbove(base, zmax, 0u);
    var lo = 0u;
    var hi = bitcast<u32>(1.0) + 1u;
    for (var it = 0u; it < 31u; it++) {
      let mid = lo + (hi - lo) / 2u;
      if (massAbove(base, zmax, mid) >= goal) { lo = mid; } else { hi = mid; }
    }
    threshold = lo;
  }

  let chunk = (p.V + WG - 1u) / WG;
  var chunkMass: array<f32, WG>;
  for (var lid = 0u; lid < WG; lid++) {
    let start = min(lid * chunk, p.V);
    let end = min(start + chunk, p.V);
    var s: f32 = 0.0;
    for (var v = start; v < end; v++) {
      let e = weight(base, v, zmax);
      if (bitcast<u32>(e) >= threshold) { s = s + e; }
    }
    chunkMass[lid] = s;
  }
  var total: f32 = 0.0;
  for (var c = 0u; c < WG; c++) { total = total + chunkMass[c]; }
  let rowId = select(m, rowIds[m], p.useRowIds == 1u);
  let ctr = vec4u(rowId, positions[m], p.stream, 0u);
  let r = uniform01(philox4x32(ctr, vec2u(p.k0, p.k1)).x) * total;
  var acc: f32 = 0.0;
  var owner = NONE;
  var lastNonEmpty = 0u;
  var pickChunk = 0u;
  var pickRest: f32 = 0.0;
  for (var c = 0u; c < WG; c++) {
    let cm = chunkMass[c];
    if (cm > 0.0) {
      lastNonEmpty = c;
      if (owner == NONE && r < acc + cm) {
        owner = c;
        pickChunk = c;
        pickRest = r - acc;
      }
    }
    acc = acc + cm;
  }
  if (owner == NONE) {
    pickChunk = lastNonEmpty;
    pickRest = chunkMass[lastNonEmpty];
  }
  let start = min(pickChunk * chunk, p.V);
  let end = min(start + chunk, p.V);
  var run: f32 = 0.0;
  var chosen = NONE;
  var lastPositive = NONE;
  for (var v = start; v < end; v++) {
    let e = weight(base, v, zmax);
    if (bitcast<u32>(e) >= threshold && e > 0.0) {
      run = run + e;
      lastPositive = v;
      if (pickRest < run) { chosen = v; break; }
    }
  }
  tokens[m] = select(chosen, lastPositive, chosen == NONE);
}`;

/** Loop iterations of one serial sampling invocation (every loop counted as trips + 1). */
function serialLoops(V: number, greedy: boolean, topP: number): number {
  const lanes = V + 2 * WG; // strided lane loops plus their exits
  const tree = 2 * WG + 16;
  if (greedy) return lanes + tree;
  const mass = lanes + tree;
  const chunk = Math.ceil(V / WG);
  return mass + (topP < 1 ? 32 * mass + 32 : 0) + V + 2 * WG + 3 * WG + chunk + 8;
}

/**
 * Records one sampled token per row into tokens[M] (u32) from logits [M, V] (f32).
 * positions[M] (u32) and row ids rows[M] (u32, default 0..M-1) key the RNG together with
 * `seed` and `stream`, so a row's token does not depend on the rest of the batch.
 */
export function sample(
  rec: Recorder,
  logits: GPUBuffer,
  tokens: GPUBuffer,
  M: number,
  V: number,
  opts: SamplingOptions,
  positions: GPUBuffer,
  rows?: GPUBuffer,
): void {
  const { temperature, topP, seed, stream } = opts;
  if (!(temperature >= 0) || !Number.isFinite(temperature)) {
    throw new Error(`sample: temperature must be a finite number >= 0, got ${temperature}`);
  }
  if (!(topP > 0 && topP <= 1)) throw new Error(`sample: topP must be in (0, 1], got ${topP}`);
  if (!Number.isInteger(stream) || stream < 0 || stream > 0xffffffff) {
    throw new Error(`sample: stream must be a u32, got ${stream}`);
  }
  if (!Number.isInteger(V) || V < 1) throw new Error(`sample: vocabulary size ${V} must be >= 1`);
  const [k0, k1] = seedKey(seed);
  const serial = useSerial(rec.gpu, serialLoops(V, temperature === 0, topP));
  const k = serial
    ? kernel(rec.gpu, "sampleSerial", SAMPLE_SERIAL_WGSL)
    : kernel(rec.gpu, "sample", SAMPLE_WGSL);
  rec.dispatch(
    k,
    // Without row ids the positions buffer fills the slot (read-only aliasing is allowed).
    [logits, tokens, positions, rows ?? positions],
    [M, V, temperature === 0 ? 1 : 0, rows ? 1 : 0, f32(temperature), f32(topP), k0, k1, stream],
    grid(rec.gpu, serial ? Math.ceil(M / SERIAL_WG) : M),
  );
}
