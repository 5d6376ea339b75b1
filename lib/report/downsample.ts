/**
 * Making long metric series readable: downsampling for display and EMA smoothing.
 *
 * Both work on copies; the raw series in a bundle's metrics.jsonl is never changed.
 *
 * @module
 */

/** A 2-D point of a metric series (x is the iteration or step). */
export interface Point {
  x: number;
  y: number;
}

/**
 * Largest-Triangle-Three-Buckets downsampling (Steinarsson 2013): keeps the first and last point
 * and, from each of `threshold - 2` equal buckets, the point forming the largest triangle with the
 * previously kept point and the next bucket's mean. Peaks and dips survive, unlike plain striding.
 * Returns a copy of `points` when it already has at most `threshold` points.
 */
export function lttb(points: readonly Point[], threshold: number): Point[] {
  if (!Number.isInteger(threshold) || threshold < 3) {
    throw new Error(`lttb: threshold must be an integer >= 3, got ${threshold}`);
  }
  const n = points.length;
  if (n <= threshold) return points.map((p) => ({ x: p.x, y: p.y }));
  const out: Point[] = [{ x: points[0].x, y: points[0].y }];
  const bucketSize = (n - 2) / (threshold - 2);
  let kept = 0;
  for (let b = 0; b < threshold - 2; b++) {
    const start = Math.floor(b * bucketSize) + 1;
    const end = Math.floor((b + 1) * bucketSize) + 1;
    // Mean of the next bucket (the last point for the final bucket).
    const nextStart = end;
    const nextEnd = Math.min(Math.floor((b + 2) * bucketSize) + 1, n);
    let mx = 0, my = 0;
    for (let i = nextStart; i < nextEnd; i++) {
      mx += points[i].x;
      my += points[i].y;
    }
    const count = nextEnd - nextStart;
    mx /= count;
    my /= count;
    const a = points[kept];
    let best = start, bestArea = -1;
    for (let i = start; i < end; i++) {
      const area = Math.abs((a.x - mx) * (points[i].y - a.y) - (a.x - points[i].x) * (my - a.y));
      if (area > bestArea) {
        bestArea = area;
        best = i;
      }
    }
    out.push({ x: points[best].x, y: points[best].y });
    kept = best;
  }
  out.push({ x: points[n - 1].x, y: points[n - 1].y });
  return out;
}

/**
 * Exponential moving average `s_i = alpha * y_i + (1 - alpha) * s_{i-1}`, bias-corrected like
 * Adam (divided by `1 - (1-alpha)^(i+1)`) so the first points are not pulled toward zero.
 */
export function ema(points: readonly Point[], alpha: number): Point[] {
  if (!(alpha > 0 && alpha <= 1)) throw new Error(`ema: alpha must be in (0, 1], got ${alpha}`);
  const out: Point[] = [];
  let s = 0;
  let decay = 1;
  for (const p of points) {
    s = alpha * p.y + (1 - alpha) * s;
    decay *= 1 - alpha;
    out.push({ x: p.x, y: s / (1 - decay) });
  }
  return out;
}

/** EMA factor for a series of `n` points: a span of about n/25 points, at least 1 point. */
export function emaAlphaFor(n: number): number {
  const span = Math.max(1, n / 25);
  return 2 / (span + 1);
}
