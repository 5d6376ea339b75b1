/**
 * The "serial" kernel style (one invocation per row, no barriers; for CPU
 * adapters) gives the very bits of the "workgroup" style, and both agree with f64 references.
 * Each test runs the same inputs under both styles on one device.
 */
import { getGpu } from "../gpu/device.ts";
import { Recorder } from "../gpu/recorder.ts";
import { rmsnorm, rmsnormBackward } from "../gpu/rmsnorm.ts";
import { entropy, tokenLogprobs } from "../gpu/logprobs.ts";
import { assertClose, randn } from "./helpers.ts";
import { assertSameBits, inBothStyles, randInts, run, up, zeros } from "./gpu_kernel_helpers.ts";

/** f64 RMSNorm forward and backward (HF Llama: y = w * (x * rstd)). */
function refRmsnorm(x: Float32Array, w: Float32Array, dy: Float32Array, M: number, D: number) {
  const y = new Float64Array(M * D), rstd = new Float64Array(M), dx = new Float64Array(M * D);
  const dw = new Float64Array(D);
  for (let m = 0; m < M; m++) {
    const o = m * D;
    let ss = 0, s = 0;
    for (let d = 0; d < D; d++) ss += x[o + d] ** 2;
    const r = 1 / Math.sqrt(ss / D + EPS);
    rstd[m] = r;
    for (let d = 0; d < D; d++) {
      y[o + d] = w[d] * x[o + d] * r;
      s += dy[o + d] * w[d] * x[o + d];
      dw[d] += dy[o + d] * x[o + d] * r;
    }
    for (let d = 0; d < D; d++) dx[o + d] = r * dy[o + d] * w[d] - r ** 3 * x[o + d] * s / D;
  }
  return { y, rstd, dx, dw };
}
const EPS = 1e-5;

Deno.test("serial rmsnorm forward and backward are bit-identical to the workgroup kernels", async () => {
  const gpu = await getGpu();
  let seed = 300;
  // D = 20000 runs ~41k serial loop iterations, within lavapipe's 65535 cap.
  // D = 600 is wider than the 256-lane workgroup (lanes sum 2 or 3 elements); M = 1 is decode.
  for (const [M, D] of [[37, 70], [5, 600], [1, 64], [70, 3], [2, 20000]]) {
    const x = randn(M * D, seed++), w = randn(D, seed++), dy = randn(M * D, seed++);
    const dx0 = randn(M * D, seed++), dw0 = randn(D, seed++);
    const out = await inBothStyles(gpu, (gpu) => {
      const gx = up(gpu, x), gw = up(gpu, w), gdy = up(gpu, dy);
      const y = zeros(gpu, M * D), rstd = zeros(gpu, M), dx = zeros(gpu, M * D);
      const dw = zeros(gpu, D), dxa = up(gpu, dx0), dwa = up(gpu, dw0);
      return run(gpu, (rec: Recorder) => {
        rmsnorm(rec, gx, gw, y, rstd, M, D, EPS);
        rmsnormBackward(rec, gdy, gx, gw, rstd, dx, dw, M, D);
        rmsnormBackward(rec, gdy, gx, gw, rstd, dxa, dwa, M, D, true);
      }, [[y, M * D], [rstd, M], [dx, M * D], [dw, D], [dxa, M * D], [dwa, D]]);
    });
    const shape = `M=${M} D=${D}`;
    ["y", "rstd", "dx", "dw", "dx+=", "dw+="].forEach((n, i) =>
      assertSameBits(out.workgroup[i], out.serial[i], `rmsnorm ${n} ${shape}`)
    );
    const ref = refRmsnorm(x, w, dy, M, D);
    const [y, rstd, dx, dw, dxa, dwa] = out.serial;
    assertClose(y, ref.y, 1e-5, 1e-4, `serial rmsnorm y ${shape}`);
    assertClose(rstd, ref.rstd, 1e-5, 1e-4, `serial rmsnorm rstd ${shape}`);
    assertClose(dx, ref.dx, 1e-4, 1e-4, `serial rmsnorm dx ${shape}`);
    assertClose(dw, ref.dw, 1e-4, 1e-4, `serial rmsnorm dw ${shape}`);
    assertClose(dxa, ref.dx.map((v, i) => v + dx0[i]), 1e-4, 1e-4, `serial dx+= ${shape}`);
    assertClose(dwa, ref.dw.map((v, i) => v + dw0[i]), 1e-4, 1e-4, `serial dw+= ${shape}`);
  }
});

/** f64 per-row lse, target log-prob and entropy. */
function refLogprobs(logits: Float32Array, targets: Uint32Array, M: number, V: number) {
  const lse = new Float64Array(M), logp = new Float64Array(M), ent = new Float64Array(M);
  for (let m = 0; m < M; m++) {
    const row = logits.subarray(m * V, (m + 1) * V);
    let mx = -Infinity, s = 0, h = 0;
    for (const x of row) mx = Math.max(mx, x);
    for (const x of row) s += Math.exp(x - mx);
    lse[m] = mx + Math.log(s);
    logp[m] = row[targets[m]] - lse[m];
    for (const x of row) if (x > -Infinity) h -= Math.exp(x - lse[m]) * (x - lse[m]);
    ent[m] = h;
  }
  return { lse, logp, ent };
}

Deno.test("serial tokenLogprobs and entropy are bit-identical to the workgroup kernels", async () => {
  const gpu = await getGpu();
  let seed = 400;
  // V = 700 is wider than the 256-lane workgroup; M = 1 is decode; one row has masked logits.
  for (const [M, V] of [[37, 103], [5, 700], [1, 45], [9, 3], [2, 20000]]) {
    const logits = randn(M * V, seed++, 3);
    if (M > 1) { for (let v = 0; v < V; v += 2) logits[V + v] = -Infinity; }
    const targets = randInts(M, V, seed++);
    if (M > 1) targets[1] = 1;
    const out = await inBothStyles(gpu, (gpu) => {
      const gl = up(gpu, logits), gt = up(gpu, targets);
      const logp = zeros(gpu, M), lse = zeros(gpu, M), ent = zeros(gpu, M);
      return run(gpu, (rec: Recorder) => {
        tokenLogprobs(rec, gl, gt, logp, lse, M, V);
        entropy(rec, gl, lse, ent, M, V);
      }, [[logp, M], [lse, M], [ent, M]]);
    });
    const shape = `M=${M} V=${V}`;
    ["logp", "lse", "entropy"].forEach((n, i) =>
      assertSameBits(out.workgroup[i], out.serial[i], `${n} ${shape}`)
    );
    const ref = refLogprobs(logits, targets, M, V);
    const [logp, lse, ent] = out.serial;
    assertClose(logp, ref.logp, 1e-4, 1e-4, `serial logp ${shape}`);
    assertClose(lse, ref.lse, 1e-4, 1e-4, `serial lse ${shape}`);
    assertClose(ent, ref.ent, 1e-4, 1e-4, `serial entropy ${shape}`);
  }
});

Deno.test("rmsnormBackward sums more rows than a CPU adapter's loop cap in chunks", async () => {
  // One thread per feature over all M rows stopped early on llvmpipe (gpu/serial.ts); the
  // two-stage weight gradient loops over at most RMSNORM_DW_CHUNK_ROWS rows per thread.
  const gpu = await getGpu();
  const M = 70000, D = 2;
  const dy = randn(M * D, 91), x = randn(M * D, 92);
  const rstd = new Float32Array(M).fill(0.5);
  const dw = zeros(gpu, D);
  const [got] = await run(gpu, (rec) => {
    rmsnormBackward(
      rec,
      up(gpu, dy),
      up(gpu, x),
      zeros(gpu, D),
      up(gpu, rstd),
      zeros(gpu, M * D),
      dw,
      M,
      D,
    );
  }, [[dw, D]]);
  const ref = [0, 1].map((d) => {
    let s = 0;
    for (let m = 0; m < M; m++) s += dy[m * D + d] * x[m * D + d] * 0.5;
    return s;
  });
  assertClose(got, ref, 1e-2, 1e-4, "dw over 70000 rows");
});
