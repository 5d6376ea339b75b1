/**
 * report.html: one self-contained, offline page (chart.js inlined) with the figures drawn live,
 * the evaluation tables, provenance, resolved manifests and sampled transcripts.
 *
 * Safety: every piece of text from a bundle (model output above all) goes through
 * {@link escapeHtml} or, for the figure data, {@link jsonForScript}; a Content-Security-Policy
 * allows only the page's own scripts (by hash), so even a missed escape could not run script.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { reportPluginsSource } from "./chart_plugins.ts";
import { evalTables, formatStat } from "./eval_table.ts";
import type { Figure } from "./figures.ts";
import type { BundleData, JsonObject, Sample } from "./load.ts";
import { selectTranscripts } from "./transcripts.ts";

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) =>
      c === "&"
        ? "&amp;"
        : c === "<"
        ? "&lt;"
        : c === ">"
        ? "&gt;"
        : c === '"'
        ? "&quot;"
        : "&#39;",
  );
}

/** JSON safe inside a `<script>` element: no `</script>`, `<!--` or JS line separators. */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** Everything the page shows. */
export interface ReportInput {
  title: string;
  bundles: readonly BundleData[];
  /** Figures in display order; each `group` becomes a section. */
  figures: readonly Figure[];
  /** Source of chart.js's UMD build, inlined as is. */
  chartJsSource: string;
  /** Canvas size of each figure. */
  size: { width: number; height: number };
}

const STYLE = `
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1240px;color:#222;padding:0 12px}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:32px}
h3{font-size:16px}table{border-collapse:collapse;margin:8px 0 16px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}.figs{display:flex;flex-wrap:wrap;gap:12px}
.fig{border:1px solid #ddd;background:#fff}pre{white-space:pre-wrap;word-break:break-word;
background:#f7f7f7;padding:6px 8px;margin:2px 0 8px;max-height:420px;overflow:auto}
.sample{border-left:4px solid #bbb;padding:2px 10px;margin:8px 0}.role-challenger{border-color:#e15759}
.role-solver{border-color:#4e79a7}.role-judge{border-color:#59a14f}.meta{color:#555;font-size:13px}
.label{font-weight:600;font-size:12px;color:#444}
`;

function pre(text: string): string {
  return `<pre>${escapeHtml(text)}</pre>`;
}

function jsonBlock(summary: string, value: unknown): string {
  if (value === undefined) return `<p class="meta">${escapeHtml(summary)}: not in the bundle</p>`;
  return `<details><summary>${escapeHtml(summary)}</summary>${
    pre(JSON.stringify(value, null, 2))
  }</details>`;
}

const KNOWN_SAMPLE_FIELDS = new Set(["iter", "step", "role", "query", "answer", "reward"]);
const ROLE_CLASSES = new Set(["challenger", "solver", "judge"]);

function sampleHtml(s: Sample): string {
  const roleClass = ROLE_CLASSES.has(s.role ?? "") ? ` role-${s.role}` : "";
  const meta = [`role: ${s.role ?? "?"}`];
  if (s.reward !== undefined) meta.push(`reward: ${s.reward}`);
  const extra = Object.fromEntries(
    Object.entries(s.raw).filter(([k]) => !KNOWN_SAMPLE_FIELDS.has(k)),
  );
  let html = `<div class="sample${roleClass}"><div class="meta">${
    escapeHtml(meta.join(" · "))
  }</div>`;
  if (s.query !== undefined) html += `<div class="label">query</div>${pre(s.query)}`;
  if (s.answer !== undefined) html += `<div class="label">answer</div>${pre(s.answer)}`;
  if (Object.keys(extra).length > 0) {
    html += `<div class="label">other fields</div>${pre(JSON.stringify(extra, null, 2))}`;
  }
  return html + `</div>`;
}

function transcriptsHtml(b: BundleData): string {
  if (b.samples.length === 0) return `<p class="meta">No samples.jsonl in this bundle.</p>`;
  const groups = selectTranscripts(b.samples);
  let html = `<p class="meta">${b.samples.length} samples in the bundle; a selection:</p>`;
  for (const g of groups) {
    html += `<h4>iteration ${escapeHtml(String(g.iter ?? "?"))}</h4>`;
    html += `<div class="transcripts">${g.samples.map(sampleHtml).join("")}</div>`;
  }
  return html;
}

function evalTablesHtml(bundles: readonly BundleData[]): string {
  const perRun = bundles.map((b) => (b.eval ? evalTables(b.eval) : []));
  const names = [...new Set(perRun.flat().map((t) => t.name))];
  if (names.length === 0) return `<p class="meta">No eval.json in these bundles.</p>`;
  let html = "";
  for (const name of names) {
    const cats = [
      ...new Set(perRun.flatMap((ts) => ts.find((t) => t.name === name)?.categories ?? [])),
    ];
    html += `<h3>${escapeHtml(name)}</h3><table><thead><tr><th></th>`;
    html += bundles.map((b) => `<th>${escapeHtml(b.label)}</th>`).join("");
    html += `</tr></thead><tbody>`;
    for (const c of cats) {
      html += `<tr><th>${escapeHtml(c)}</th>`;
      html += perRun.map((ts) => {
        const stat = ts.find((t) => t.name === name)?.stats.get(c);
        return `<td>${escapeHtml(formatStat(stat))}</td>`;
      }).join("");
      html += `</tr>`;
    }
    html += `</tbody></table>`;
  }
  return html + `<p class="meta">mean ± standard error (n = items evaluated)</p>`;
}

function figuresHtml(
  figures: readonly { index: number; fig: Figure }[],
  size: ReportInput["size"],
) {
  if (figures.length === 0) return `<p class="meta">No figures.</p>`;
  return `<div class="figs">${
    figures.map(({ index, fig }) =>
      `<canvas class="fig" id="fig-${index}" width="${size.width}" height="${size.height}" ` +
      `aria-label="${escapeHtml(fig.title)}"></canvas>`
    ).join("")
  }</div>`;
}

const MAX_RECORDS = 200;

// metrics.jsonl rows that are not points of a series, e.g. a gpu-probe's checks.
function recordsHtml(records: readonly JsonObject[]): string {
  const shown = records.slice(0, MAX_RECORDS).map((r) => JSON.stringify(r)).join("\n");
  const more = records.length > MAX_RECORDS ? `, first ${MAX_RECORDS} shown` : "";
  return `<details open><summary>${records.length} metric records without iter/step${more}` +
    `</summary>${pre(shown)}</details>`;
}

// bench.json's table: each figure and its fraction of the adapter's limit.
function benchTableHtml(b: BundleData): string {
  let html = `<table><thead><tr><th>case</th><th>value</th><th>unit</th><th>fraction</th>` +
    `<th>of</th></tr></thead><tbody>`;
  for (const r of b.bench) {
    const fraction = r.fraction === null ? "–" : `${(100 * r.fraction).toFixed(2)}%`;
    html += `<tr><td>${escapeHtml(r.case)}</td><td>${escapeHtml(r.value.toPrecision(4))}</td>` +
      `<td>${escapeHtml(r.unit)}</td><td>${escapeHtml(fraction)}</td>` +
      `<td>${escapeHtml(r.of ?? "limit unknown")}</td></tr>`;
  }
  return html + `</tbody></table>`;
}

function runSummaryHtml(bundles: readonly BundleData[]): string {
  let html = `<table><thead><tr><th>run</th><th>status</th><th>folder</th><th>root hash</th>` +
    `</tr></thead><tbody>`;
  for (const b of bundles) {
    const status = typeof b.status?.status === "string" ? b.status.status : "unknown";
    const error = typeof b.status?.error === "string" ? ` (${b.status.error})` : "";
    const root = typeof b.bundle?.rootHash === "string" ? b.bundle.rootHash : "not sealed";
    html += `<tr><td>${escapeHtml(b.label)}</td><td>${escapeHtml(status + error)}</td>` +
      `<td>${escapeHtml(b.dir)}</td><td><code>${escapeHtml(root)}</code></td></tr>`;
  }
  return html + `</tbody></table>`;
}

function sha256Base64(text: string): string {
  return createHash("sha256").update(text).digest("base64");
}

// Draws every figure; plugin code is shared with the PNG renderer.
function initScript(): string {
  return `(function () {
  var plugins = ${reportPluginsSource()};
  var figures = JSON.parse(document.getElementById("report-figures").textContent);
  figures.forEach(function (f, i) {
    var config = f.config;
    delete config.options.devicePixelRatio;
    config.plugins = plugins;
    new Chart(document.getElementById("fig-" + i), config);
  });
  document.body.setAttribute("data-charts-drawn", String(figures.length));
})();`;
}

/** Builds the whole report.html text. */
export function buildReportHtml(input: ReportInput): string {
  const { bundles, figures, size } = input;
  const indexed = figures.map((fig, index) => ({ index, fig }));
  const groups = [...new Set(figures.map((f) => f.group))];
  const inGroup = (g: string) => indexed.filter((x) => x.fig.group === g);

  let body = `<h1>${escapeHtml(input.title)}</h1>${runSummaryHtml(bundles)}`;
  if (groups.includes("comparison")) {
    body += `<h2>Comparison across runs</h2>${figuresHtml(inGroup("comparison"), size)}`;
  }
  body += `<h2>Held-out evaluation</h2>${evalTablesHtml(bundles)}`;
  body += figuresHtml(inGroup("evaluation"), size);
  for (const b of bundles) {
    body += `<h2>Run ${escapeHtml(b.label)}</h2>`;
    body += `<h3>Metrics</h3>${
      inGroup(b.label).length === 0
        ? `<p class="meta">No metric series (rows with iter or step) in this bundle.</p>`
        : figuresHtml(inGroup(b.label), size)
    }`;
    if (b.metricRecords.length > 0) body += recordsHtml(b.metricRecords);
    if (b.bench.length > 0) body += `<h3>Benchmark (bench.json)</h3>${benchTableHtml(b)}`;
    body += `<h3>Provenance and manifest</h3>`;
    body += jsonBlock("provenance.json", b.provenance);
    body += jsonBlock("manifest.json (resolved)", b.manifest);
    body += `<h3>Sampled transcripts</h3>${transcriptsHtml(b)}`;
  }

  if (/<\/script|<!--/i.test(input.chartJsSource)) {
    throw new Error("chart.js source contains '</script' or '<!--'; it cannot be inlined as is");
  }
  const scripts = [input.chartJsSource, initScript()];
  const csp = [
    "default-src 'none'",
    `script-src ${scripts.map((s) => `'sha256-${sha256Base64(s)}'`).join(" ")}`,
    "style-src 'unsafe-inline'",
    "img-src data:",
  ].join("; ");
  const data = jsonForScript(figures.map((f) => ({ title: f.title, config: f.config })));
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${escapeHtml(csp)}">
<title>${escapeHtml(input.title)}</title><style>${STYLE}</style></head>
<body>
${body}
<script type="application/json" id="report-figures">${data}</script>
${scripts.map((s) => `<script>${s}</script>`).join("\n")}
</body></html>
`;
}
