/**
 * Rotary position embedding (RoPE), Hugging Face `rotate_half` convention, with Llama 3
 * frequency scaling.
 *
 * For a row at position `p`, head `h` and pair index `i < headDim/2` (the pair is dims `i` and
 * `i + headDim/2`), with every step in f32:
 *
 *     a  = fp32(p) * invFreq[i]                 (one f32 multiply, as HF's f32 `inv_freq @ pos`)
 *     c  = cos(a), s = sin(a)                   (after exact-ish range reduction to [-pi, pi])
 *     y[i]          = x[i] * c - x[i + half] * s
 *     y[i + half]   = x[i + half] * c + x[i] * s
 *
 * The backward rotates by the opposite angle (the rotation is orthogonal):
 *
 *     dx[i]         = dy[i] * c + dy[i + half] * s
 *     dx[i + half]  = dy[i + half] * c - dy[i] * s
 *
 * @module
 */
import { grid, kernel, type Recorder } from "./recorder.ts";

/** Llama 3 `rope_scaling` parameters (HF config names in camelCase). */
export interface Llama3RopeScaling {
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

/**
 * Inverse frequencies `1 / theta^(2i/headDim)` for `i < headDim/2`, with Llama 3 scaling applied
 * exactly as HF transformers' `_compute_llama3_parameters` (in f64, then rounded to f32):
 * wavelengths longer than `original / lowFreqFactor` are divided by `factor`, shorter than
 * `original / highFreqFactor` are kept, and the band between is interpolated smoothly.
 */
export function ropeInvFreq(
  headDim: number,
  theta: number,
  scaling?: Llama3RopeScaling,
): Float32Array {
  if (!Number.isInteger(headDim) || headDim <= 0 || headDim % 2 !== 0) {
    throw new Error(`ropeInvFreq: headDim must be a positive even integer, got ${headDim}`);
  }
  if (!(theta > 0)) throw new Error(`ropeInvFreq: theta must be > 0, got ${theta}`);
  const half = headDim / 2;
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    let f = 1 / Math.pow(theta, (2 * i) / headDim);
    if (scaling) {
      const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: old } = scaling;
      if (!(factor > 0) || !(highFreqFactor > lowFreqFactor) || !(old > 0)) {
        throw new Error(
          `ropeInvFreq: bad llama3 rope_scaling ${JSON.stringify(scaling)} ` +
            `(need factor > 0, highFreqFactor > lowFreqFactor, originalMaxPositionEmbeddings > 0)`,
        );
      }
      const lowFreqWavelen = old / lowFreqFactor;
      const highFreqWavelen = old / highFreqFactor;
      const wavelen = (2 * Math.PI) / f;
      if (wavelen > lowFreqWavelen) f = f / factor;
      else if (wavelen >= highFreqWavelen) {
        const smooth = (old / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
        f = (1 - smooth) * f / factor + smooth * f;
      }
    }
    out[i] = f;
  }
  return out;
}

const WG = 256;

/** WGSL for one rotation direction; `inPlace` binds one read_write buffer for x and y. */
function ropeWgsl(inPlace: boolean, sign: 1 | -1): string {
  const io = inPlace
    ? `@group(0) @binding(0) var<storage, read_write> y: array<f32>;`
    : `@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;`;
  const src = inPlace ? "y" : "x";
  return /* wgsl */ `
${io}
@group(0) @binding(1) var<storage, read> positions: array<u32>;
@group(0) @binding(2) var<storage, read> invFreq: array<f32>;
struct P { M: u32, nHeads: u32, headDim: u32 }
@group(0) @binding(${inPlace ? 3 : 4}) var<uniform> p: P;

// 2*pi split so that k*C1 is exact for k < 2^16 (Cody-Waite): keeps sin/cos accurate for
// positions in the thousands, where GPU sin/cos of a raw large argument lose precision.
const INV_TWO_PI: f32 = 0.15915494309189535;
const C1: f32 = 6.28125;
const C2: f32 = 0.0019353071693331003;
const C3: f32 = 1.0253131677018246e-11;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let half = p.headDim / 2u;
  let t = (wid.x + wid.y * nwg.x) * ${WG}u + lid;
  if (t >= p.M * p.nHeads * half) { return; }
  let i = t % half;
  let mh = t / half;          // row * nHeads + head
  let m = mh / p.nHeads;
  let a = f32(positions[m]) * invFreq[i];
  let k = round(a * INV_TWO_PI);
  let r = ((a - k * C1) - k * C2) - k * C3;
  let c = cos(r);
  let s = ${sign === 1 ? "" : "-"}sin(r);
  let base = mh * p.headDim;
  let x0 = ${src}[base + i];
  let x1 = ${src}[base + i + half];
  y[base + i] = x0 * c - x1 * s;
  y[base + i + half] = x1 * c + x0 * s;
}`;
}

function dispatchRope(
  rec: Recorder,
  sign: 1 | -1,
  x: GPUBuffer,
  y: GPUBuffer,
  positions: GPUBuffer,
  invFreq: GPUBuffer,
  M: number,
  nHeads: number,
  headDim: number,
): void {
  const what = sign === 1 ? "rope" : "ropeBackward";
  if (headDim % 2 !== 0) throw new Error(`${what}: headDim must be even, got ${headDim}`);
  const inPlace = x === y;
  const k = kernel(
    rec.gpu,
    `${what}${inPlace ? "InPlace" : ""}`,
    ropeWgsl(inPlace, sign),
  );
  const buffers = inPlace ? [y, positions, invFreq] : [x, positions, invFreq, y];
  const threads = M * nHeads * (headDim / 2);
  rec.dispatch(k, buffers, [M, nHeads, headDim], grid(rec.gpu, Math.ceil(threads / WG)));
}

/**
 * Records y = RoPE(x) for x, y of shape [M, nHeads, headDim] with positions[M] (u32) and
 * invFreq[headDim/2] (f32, from {@link ropeInvFreq}). `y` may be `x` (in place).
 */
export function rope(
  rec: Recorder,
  x: GPUBuffer,
  y: GPUBuffer,
  positions: GPUBuffer,
  invFreq: GPUBuffer,
  M: number,
  nHeads: number,
  headDim: number,
): void {
  dispatchRope(rec, 1, x, y, positions, invFreq, M, nHeads, headDim);
}

/**
 * Records dx = RoPE^T(dy): the rotation by minus the angle. Shapes as {@link rope};
 * `dx` may be `dy` (in place).
 */
export function ropeBackward(
  rec: Recorder,
  dy: GPUBuffer,
  dx: GPUBuffer,
  positions: GPUBuffer,
  invFreq: GPUBuffer,
  M: number,
  nHeads: number,
  headDim: number,
): void {
  dispatchRope(rec, -1, dy, dx, positions, invFreq, M, nHeads, headDim);
}
