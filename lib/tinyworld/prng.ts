/**
 * Seeded pseudo-random numbers for the tiny world's generators.
 *
 * Integer-only arithmetic (splitmix32 over a 32-bit state) so the same seed gives the same
 * stream on every machine and JavaScript engine; no Math.random anywhere in lib/tinyworld.
 */

/** A deterministic random stream. */
export class Rng {
  #state: number;

  /** @param seed any integer; it is mixed with `stream` so nearby seeds give unrelated streams. */
  constructor(seed: number, stream = 0) {
    if (!Number.isSafeInteger(seed)) {
      throw new Error(`Rng: seed must be a safe integer, got ${seed}`);
    }
    // Fold the high bits in so seeds above 2^32 still differ.
    const hi = Math.floor(seed / 4294967296) >>> 0;
    this.#state = mix32((seed >>> 0) ^ mix32(hi ^ mix32(stream >>> 0) ^ 0x9e3779b9));
  }

  /** Next uniform 32-bit unsigned integer. */
  nextU32(): number {
    this.#state = (this.#state + 0x9e3779b9) >>> 0;
    return mix32(this.#state);
  }

  /** Uniform float in [0, 1) with 32 bits of resolution. */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [lo, hi] (inclusive); rejection sampling keeps it unbiased. */
  int(lo: number, hi: number): number {
    if (!(Number.isInteger(lo) && Number.isInteger(hi) && hi >= lo)) {
      throw new Error(`Rng.int: bad range [${lo}, ${hi}]`);
    }
    const span = hi - lo + 1;
    if (span > 4294967296) throw new Error(`Rng.int: range [${lo}, ${hi}] wider than 2^32`);
    const limit = 4294967296 - (4294967296 % span);
    let x = this.nextU32();
    while (x >= limit) x = this.nextU32();
    return lo + (x % span);
  }

  /** One element of a non-empty array, uniformly. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error("Rng.pick: empty array");
    return items[this.int(0, items.length - 1)];
  }

  /** Index drawn in proportion to non-negative weights (at least one positive). */
  weighted(weights: readonly number[]): number {
    let total = 0;
    for (const w of weights) {
      if (!(w >= 0) || !Number.isFinite(w)) throw new Error(`Rng.weighted: bad weight ${w}`);
      total += w;
    }
    if (total <= 0) throw new Error("Rng.weighted: all weights are zero");
    let r = this.next() * total;
    for (let i = 0; i < weights.length; i++) {
      r -= weights[i];
      if (r < 0 && weights[i] > 0) return i;
    }
    // Rounding can leave r == 0 after the loop: return the last positive weight.
    for (let i = weights.length - 1; i >= 0; i--) if (weights[i] > 0) return i;
    throw new Error("unreachable");
  }
}

/** splitmix32-style finaliser: a bijection on 32-bit integers with good avalanche. */
export function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x21f0aaad);
  x = Math.imul(x ^ (x >>> 15), 0x735a2d97);
  return (x ^ (x >>> 15)) >>> 0;
}

/** 32-bit FNV-1a hash of a string's UTF-16 code units, finalised with mix32. */
export function hashText(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return mix32(h >>> 0);
}
