/**
 * RoPE inverse frequencies as transformers computes them, in float32 step by step
 * (`_compute_default_rope_parameters`, then `_compute_llama3_parameters` when the config asks
 * for llama3 scaling). The ONNX export carries them as a constant, so this is written from the HF
 * source rather than shared with the engine's kernels (gpu/rope.ts): onnxruntime then checks the
 * engine's own frequencies instead of repeating them.
 *
 * @module
 */
import type { LlamaConfig } from "../model/config.ts";

const f = Math.fround;

/** The [headDim/2] inverse frequencies of HF's LlamaRotaryEmbedding for this config. */
export function hfRopeInvFreq(config: LlamaConfig): Float32Array {
  const dim = config.headDim, half = dim / 2;
  const base = config.ropeTheta;
  const inv = new Float32Array(half);
  // 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim)), every operation in f32.
  for (let i = 0; i < half; i++) inv[i] = f(1 / f(Math.pow(f(base), f(f(2 * i) / f(dim)))));
  const s = config.ropeScaling;
  if (s === null) return inv;
  const old = s.originalMaxPositionEmbeddings;
  const lowWavelen = old / s.lowFreqFactor;
  const highWavelen = old / s.highFreqFactor;
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const wavelen = f(f(2 * Math.PI) / inv[i]);
    // inv_freq_llama = where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    const llama = wavelen > lowWavelen ? f(inv[i] / f(s.factor)) : inv[i];
    const isMedium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
    if (!isMedium) {
      out[i] = llama;
      continue;
    }
    // smooth = (old / wavelen - low) / (high - low); (1 - smooth) * llama / factor + smooth * llama
    const smooth = f(
      f(f(f(old) / wavelen) - f(s.lowFreqFactor)) / f(s.highFreqFactor - s.lowFreqFactor),
    );
    out[i] = f(f(f(f(1 - smooth) * llama) / f(s.factor)) + f(smooth * llama));
  }
  return out;
}
