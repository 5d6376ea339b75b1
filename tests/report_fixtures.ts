/**
 * Small synthetic result bundles for the report tests, written to a temp folder at test time.
 * The curves are deterministic functions of the iteration, so every run makes the same files.
 */
import { join } from "node:path";

/** Text that must render as text in report.html, never as markup. */
export const HOSTILE_QUERY = `Explain <script>window.__pwned = 1;</script> please`;
/** Second hostile sample: an image whose error handler would run script. */
export const HOSTILE_ANSWER = `Sure: <img src=x onerror="window.__pwned = 2"> & "quotes" 'too'`;

/** Options of {@link writeFixtureBundle}. */
export interface FixtureOptions {
  experiment: string;
  runId: string;
  iters: number;
  /** Shifts the curves so two runs differ. */
  offset?: number;
  /** Leave out these files (e.g. to mimic a gpu-probe bundle). */
  omit?: string[];
}

/** Writes a bundle under `root/<experiment>/<runId>/` and returns its path. */
export async function writeFixtureBundle(root: string, o: FixtureOptions): Promise<string> {
  const dir = join(root, o.experiment, o.runId);
  await Deno.mkdir(dir, { recursive: true });
  const off = o.offset ?? 0;
  const files: Record<string, string> = {};
  files["manifest.json"] = JSON.stringify(
    { name: o.experiment, seed: 7, model: { path: "tiny" }, loss: { beta: 0.05 } },
    null,
    2,
  );
  files["provenance.json"] = JSON.stringify({ deno: "2.9.6", os: "linux", git: { commit: "abc" } });
  files["status.json"] = JSON.stringify({ status: "completed", runId: o.runId });
  const metrics: string[] = [];
  for (let i = 0; i < o.iters; i++) {
    const wiggle = Math.sin(i * 0.7 + off) * 0.2;
    metrics.push(JSON.stringify({
      iter: i,
      solver: { reward: { mean: 0.2 + off * 0.1 + 0.5 * (1 - Math.exp(-i / 40)) + wiggle } },
      kl: { solver: 0.001 * i * (1 + off) + Math.abs(wiggle) * 0.01 },
      loss: 1 / (1 + i * 0.05) + off,
      note: "text fields are skipped",
    }));
  }
  files["metrics.jsonl"] = metrics.join("\n") + "\n";
  const samples = [
    { iter: 0, role: "challenger", query: HOSTILE_QUERY, reward: -0.3 },
    { iter: 0, role: "solver", query: HOSTILE_QUERY, answer: HOSTILE_ANSWER, reward: 0.3 },
    { iter: o.iters - 1, role: "judge", query: "rate it", answer: "5", reward: 5 },
  ];
  files["samples.jsonl"] = samples.map((s) => JSON.stringify(s)).join("\n") + "\n";
  files["eval.json"] = JSON.stringify({
    winRate: {
      overall: { mean: 0.3 + off * 0.05, se: 0.016 },
      perSubset: {
        helpful_base: { mean: 0.31 + off * 0.05, se: 0.04, n: 129 },
        koala: { mean: 0.28 + off * 0.05, se: 0.04, n: 156 },
        oasst: { mean: 0.33 + off * 0.05, se: 0.035, n: 188 },
      },
    },
    accuracy: { byDifficulty: { "1": 0.9 - off * 0.1, "2": 0.6, "3": 0.3 } },
  });
  for (const [name, text] of Object.entries(files)) {
    if (o.omit?.includes(name)) continue;
    await Deno.writeTextFile(join(dir, name), text);
  }
  return dir;
}

/** Decodes a PNG and counts pixels within `tolerance` (per channel) of the colour `#rrggbb`. */
export async function countColorPixels(
  png: Uint8Array,
  hex: string,
  tolerance = 8,
): Promise<number> {
  const { createCanvas, loadImage } = await import("@napi-rs/canvas");
  const img = await loadImage(png);
  const canvas = createCanvas(img.width, img.height);
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const { data } = ctx.getImageData(0, 0, img.width, img.height);
  const rgb = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (rgb.every((c, k) => Math.abs(data[i + k] - c) <= tolerance)) n++;
  }
  return n;
}

/** Decodes a PNG and counts pixels that differ from the top-left (background) pixel. */
export async function countForegroundPixels(
  png: Uint8Array,
): Promise<{ width: number; height: number; foreground: number }> {
  const { createCanvas, loadImage } = await import("@napi-rs/canvas");
  const img = await loadImage(png);
  const canvas = createCanvas(img.width, img.height);
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const { data } = ctx.getImageData(0, 0, img.width, img.height);
  let foreground = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (
      data[i] !== data[0] || data[i + 1] !== data[1] || data[i + 2] !== data[2] ||
      data[i + 3] !== data[3]
    ) foreground++;
  }
  return { width: img.width, height: img.height, foreground };
}
