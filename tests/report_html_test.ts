import assert from "node:assert/strict";
import { join } from "node:path";
import { escapeHtml, jsonForScript } from "../lib/report/html.ts";
import { writeReport } from "../lib/report/report.ts";
import { Browser, obtainChromium } from "./report_chromium.ts";
import { colorFor } from "../lib/report/figures.ts";
import {
  countColorPixels,
  countForegroundPixels,
  HOSTILE_ANSWER,
  HOSTILE_QUERY,
  writeFixtureBundle,
} from "./report_fixtures.ts";

Deno.test("escapeHtml and jsonForScript neutralise markup", () => {
  assert.equal(
    escapeHtml(`<img src=x onerror="a('b')"> & co`),
    "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt; &amp; co",
  );
  const json = jsonForScript({ s: "</script><script>alert(1)</script>\u2028" });
  assert.ok(!json.includes("<") && !json.includes(">") && !json.includes("\u2028"), json);
  assert.deepEqual(JSON.parse(json), { s: "</script><script>alert(1)</script>\u2028" });
});

Deno.test("report.html holds no raw model text", async () => {
  const root = await Deno.makeTempDir();
  try {
    const dir = await writeFixtureBundle(root, { experiment: "tiny-lsp", runId: "a", iters: 10 });
    const { htmlPath } = await writeReport([dir]);
    const html = await Deno.readTextFile(htmlPath);
    assert.ok(!html.includes(HOSTILE_QUERY) && !html.includes(HOSTILE_ANSWER));
    assert.ok(html.includes(escapeHtml(HOSTILE_QUERY)));
    assert.ok(html.includes(escapeHtml(HOSTILE_ANSWER)));
    assert.equal(html.match(/<script/g)?.length, 3, "data, chart.js and the init script only");

    // The same bundle twice: two runs with distinct labels, each with its own section.
    const twice = await writeReport([dir, dir], { outDir: join(root, "twice") });
    const twiceHtml = await Deno.readTextFile(twice.htmlPath);
    assert.ok(
      twiceHtml.includes("Run tiny-lsp/a</h2>") && twiceHtml.includes("Run tiny-lsp/a (2)</h2>"),
    );
    assert.equal(twice.pngs.filter((p) => p.includes("/runs/")).length, 6);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

// Runs in the page: what was drawn and what elements exist.
const PAGE_CHECKS = `(() => {
  const canvases = [...document.querySelectorAll("canvas")];
  const inked = canvases.map((c) => {
    const { data } = c.getContext("2d").getImageData(0, 0, c.width, c.height);
    let n = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] > 0 && (data[i] < 245 || data[i + 1] < 245 || data[i + 2] < 245)) n++;
    }
    return n / (c.width * c.height);
  });
  const pres = [...document.querySelectorAll(".transcripts pre")].map((p) => p.textContent);
  return {
    drawn: Number(document.body.dataset.chartsDrawn),
    canvases: canvases.length,
    inked,
    images: document.querySelectorAll("img").length,
    onerrorAttributes: document.querySelectorAll("[onerror]").length,
    scripts: document.querySelectorAll("script").length,
    pwned: window.__pwned ?? null,
    pres,
  };
})()`;

Deno.test("report.html in headless Chromium: charts drawn, no console errors, text stays text", async () => {
  const chromium = await obtainChromium();
  assert.ok(
    chromium,
    "Chromium not found: install it with `apt-get install -y chromium` (or set CHROMIUM=<path>)",
  );
  console.log(`chromium from ${chromium.source}`);
  const root = await Deno.makeTempDir();
  const browser = await Browser.launch(chromium, 1200, 2000);
  try {
    const a = await writeFixtureBundle(root, { experiment: "tiny-lsp", runId: "a", iters: 700 });
    const b = await writeFixtureBundle(root, {
      experiment: "tiny-grpo",
      runId: "b",
      iters: 300,
      offset: 1,
    });
    const probe = await writeFixtureBundle(root, {
      experiment: "gpu-probe",
      runId: "p",
      iters: 1,
      omit: ["metrics.jsonl", "samples.jsonl", "eval.json", "manifest.json"],
    });
    const { htmlPath, pngs } = await writeReport([a, b, probe]);
    assert.equal(htmlPath, join(root, "reports", htmlPath.split("/").at(-2)!, "report.html"));
    // 3 comparisons + 3 eval tables + 3 metrics for each of the two runs with metrics.
    assert.equal(pngs.length, 12, pngs.join("\n"));

    const page = await browser.load(
      `file://${htmlPath}`,
      "document.body && document.body.dataset.chartsDrawn",
      PAGE_CHECKS,
    );
    const shotPath = join(root, "report-screenshot.png");
    await Deno.writeFile(shotPath, page.screenshot);
    const v = page.value as {
      drawn: number;
      canvases: number;
      inked: number[];
      images: number;
      onerrorAttributes: number;
      scripts: number;
      pwned: unknown;
      pres: string[];
    };
    console.log(
      `chromium: ${v.canvases} canvases, ink ${v.inked.map((x) => x.toFixed(3)).join(" ")}; ` +
        `errors: ${JSON.stringify(page.errors)}`,
    );
    assert.deepEqual(page.errors, []);
    assert.equal(v.drawn, 12);
    assert.equal(v.canvases, 12);
    for (const [i, ink] of v.inked.entries()) assert.ok(ink > 0.01, `canvas ${i} is blank: ${ink}`);
    assert.equal(v.images, 0, "an <img> from model text became an element");
    assert.equal(v.onerrorAttributes, 0);
    assert.equal(v.scripts, 3);
    assert.equal(v.pwned, null);
    assert.ok(v.pres.includes(HOSTILE_QUERY), "the hostile query is shown as text");
    assert.ok(v.pres.includes(HOSTILE_ANSWER), "the hostile answer is shown as text");

    const shot = await countForegroundPixels(page.screenshot);
    assert.equal(shot.width, 1200);
    assert.equal(shot.height, 2000);
    // The first screen holds the run table and the first comparison charts.
    assert.ok(shot.foreground > 0.05 * 1200 * 2000, `screenshot nearly blank (${shotPath})`);
    // ...and the curves themselves: pixels in the colours of the first two runs.
    const first = await countColorPixels(page.screenshot, colorFor(0));
    const second = await countColorPixels(page.screenshot, colorFor(1));
    console.log(`screenshot: ${shot.foreground} non-background, run colours ${first} / ${second}`);
    assert.ok(first > 1000 && second > 1000, `curves not visible: ${first} / ${second}`);

    // The harness itself must see errors: a page that logs one and throws.
    const bad = join(root, "bad.html");
    await Deno.writeTextFile(
      bad,
      `<!doctype html><body><script>console.error("boom"); null.x;</script></body>`,
    );
    const badPage = await browser.load(`file://${bad}`, "true", "1");
    assert.ok(badPage.errors.some((e) => e.includes("boom")), JSON.stringify(badPage.errors));
    assert.ok(
      badPage.errors.some((e) => e.startsWith("exception")),
      JSON.stringify(badPage.errors),
    );
  } finally {
    await browser.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("report refuses a folder that is not a bundle, and an output folder it did not write", async () => {
  const root = await Deno.makeTempDir();
  try {
    // A folder that merely looks like a report's output: not a bundle, so nothing is written.
    const notBundle = join(root, "paper");
    await Deno.mkdir(join(notBundle, "charts"), { recursive: true });
    await Deno.writeTextFile(join(notBundle, "report.html"), "my own page");
    await Deno.writeTextFile(join(notBundle, "charts", "fig1.png"), "my figure");
    await assert.rejects(
      () => writeReport([notBundle]),
      /paper: not a result bundle \(no bundle\.json or status\.json\)/,
    );
    await assert.rejects(
      () => writeReport(["/etc"], { outDir: join(root, "x") }),
      /not a result bundle/,
    );
    assert.equal(await Deno.readTextFile(join(notBundle, "report.html")), "my own page");
    assert.equal(await Deno.readTextFile(join(notBundle, "charts", "fig1.png")), "my figure");

    // A real bundle into a non-empty folder of someone else's: refused unless --force.
    const dir = await writeFixtureBundle(root, { experiment: "tiny-lsp", runId: "a", iters: 5 });
    await assert.rejects(
      () => writeReport([dir], { outDir: notBundle }),
      /is not empty and holds no report of ours.*--force/,
    );
    assert.equal(await Deno.readTextFile(join(notBundle, "report.html")), "my own page");
    // An empty folder, then the same folder again (it now holds our report): both fine.
    const out = join(root, "out");
    await writeReport([dir], { outDir: out });
    await writeReport([dir], { outDir: out });
    // --force writes report.html and charts/ and leaves the other files alone.
    await Deno.writeTextFile(join(root, "keep.txt"), "kept");
    const forced = await writeReport([dir], { outDir: notBundle, force: true });
    assert.match(await Deno.readTextFile(forced.htmlPath), /<title>selfplay report: /);
    assert.equal(await Deno.readTextFile(join(notBundle, "charts", "fig1.png")), "my figure");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
