/**
 * Headless Chromium driven over the DevTools protocol (Deno's WebSocket), for the report.html
 * test: load a page, collect console errors and exceptions, evaluate checks, take a screenshot.
 */
import { brotliDecompressSync } from "node:zlib";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** A Chromium binary and the environment it needs. */
export interface ChromiumBinary {
  /** Absolute path of the executable. */
  bin: string;
  /** Extra environment for the process (libraries and fonts of the packaged build). */
  env: Record<string, string>;
  /** Where it came from, for the test's log. */
  source: string;
}

/** The npm package that ships a headless Chromium inside its tarball (deno.json pins it). */
const PACKAGE = "@sparticuz/chromium";

/**
 * Finds a Chromium for the report test: `CHROMIUM=<path>` if set, else the build shipped in the
 * project's own npm dependency @sparticuz/chromium (x86-64 Linux; unpacked once under
 * node_modules/.cache/), else an installed one (Debian's `chromium`). So a machine with only
 * Node.js needs no browser install: `deno task test` fetches the package like any other.
 */
export async function obtainChromium(): Promise<ChromiumBinary | undefined> {
  const env = Deno.env.get("CHROMIUM");
  if (env) return { bin: env, env: {}, source: "CHROMIUM" };
  if (Deno.build.os === "linux" && Deno.build.arch === "x86_64") {
    return await unpackPackagedChromium();
  }
  for (const c of ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]) {
    try {
      if (Deno.statSync(c).isFile) return { bin: c, env: {}, source: c };
    } catch { /* not here */ }
  }
  return undefined;
}

/**
 * Unpacks the package's brotli files (the browser, the NSS libraries it links against, a font)
 * into node_modules/.cache/selfplay-chromium-<version>/, once: the folder is built under a
 * temporary name and renamed, so a half-unpacked copy is never used.
 */
async function unpackPackagedChromium(): Promise<ChromiumBinary> {
  const entry = fileURLToPath(import.meta.resolve(PACKAGE));
  const pkgDir = join(dirname(entry), "..");
  const version = JSON.parse(await Deno.readTextFile(join(pkgDir, "package.json"))).version;
  const root = fileURLToPath(new URL("../node_modules/.cache/", import.meta.url));
  const dir = join(root, `selfplay-chromium-${version}`);
  const result: ChromiumBinary = {
    bin: join(dir, "chromium"),
    env: { LD_LIBRARY_PATH: join(dir, "lib"), FONTCONFIG_FILE: join(dir, "fonts.conf") },
    source: `${PACKAGE}@${version}`,
  };
  try {
    if (Deno.statSync(result.bin).isFile) return result;
  } catch { /* not unpacked yet */ }
  await Deno.mkdir(root, { recursive: true });
  const tmp = await Deno.makeTempDir({ dir: root, prefix: ".chromium-unpack-" });
  try {
    const bin = join(pkgDir, "bin");
    const inflate = async (name: string) =>
      brotliDecompressSync(await Deno.readFile(join(bin, name)));
    await Deno.writeFile(join(tmp, "chromium"), await inflate("chromium.br"), { mode: 0o755 });
    await untar(await inflate("al2023.tar.br"), tmp); // lib/: libnss3, libnspr4, libexpat, ...
    await untar(await inflate("fonts.tar.br"), tmp); // fonts/Open_Sans/*.ttf
    await Deno.writeTextFile(
      join(tmp, "fonts.conf"),
      `<?xml version="1.0"?>\n<fontconfig><dir>${join(dir, "fonts")}</dir>` +
        `<cachedir>${join(dir, "fonts-cache")}</cachedir></fontconfig>\n`,
    );
    await Deno.rename(tmp, dir);
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    // Another test process unpacked it first: use theirs.
    if (!(e instanceof Deno.errors.AlreadyExists) && !(e as Error).message.includes("not empty")) {
      throw e;
    }
  }
  return result;
}

/** Extracts the regular files and folders of a ustar archive under `dir`. */
async function untar(tar: Uint8Array, dir: string): Promise<void> {
  const text = (a: number, b: number) =>
    new TextDecoder().decode(tar.subarray(a, b)).replace(/\0.*$/s, "");
  for (let off = 0; off + 512 <= tar.length;) {
    const name = text(off, off + 100);
    if (name === "") break;
    const prefix = text(off + 345, off + 500);
    const size = parseInt(text(off + 124, off + 136).trim() || "0", 8);
    const type = String.fromCharCode(tar[off + 156]);
    const path = join(dir, prefix ? `${prefix}/${name}` : name);
    if (!path.startsWith(dir + "/")) throw new Error(`tar entry "${name}" leaves ${dir}`);
    if (type === "5") await Deno.mkdir(path, { recursive: true });
    else if (type === "0" || type === "\0") {
      await Deno.mkdir(dirname(path), { recursive: true });
      await Deno.writeFile(path, tar.subarray(off + 512, off + 512 + size), { mode: 0o755 });
    }
    off += 512 + Math.ceil(size / 512) * 512;
  }
}

/** What one page load produced. */
export interface PageResult {
  /** Console errors, uncaught exceptions and error log entries (CSP violations included). */
  errors: string[];
  /** Value of the evaluated expression (JSON round-tripped). */
  value: unknown;
  /** PNG screenshot of the viewport. */
  screenshot: Uint8Array;
}

interface CdpMessage {
  id?: number;
  method?: string;
  // deno-lint-ignore no-explicit-any
  params?: any;
  // deno-lint-ignore no-explicit-any
  result?: any;
  error?: { message: string };
}

/** A running headless Chromium with one page. Call {@link Browser.close} when done. */
export class Browser {
  #child: Deno.ChildProcess;
  #ws: WebSocket;
  #profile: string;
  #nextId = 1;
  #pending = new Map<number, { resolve: (m: CdpMessage) => void; reject: (e: Error) => void }>();
  #listeners: ((m: CdpMessage) => void)[] = [];

  private constructor(child: Deno.ChildProcess, ws: WebSocket, profile: string) {
    this.#child = child;
    this.#ws = ws;
    this.#profile = profile;
    ws.onmessage = (ev) => {
      const msg = JSON.parse(String(ev.data)) as CdpMessage;
      if (msg.id !== undefined) {
        const p = this.#pending.get(msg.id);
        this.#pending.delete(msg.id);
        if (msg.error) p?.reject(new Error(`CDP: ${msg.error.message}`));
        else p?.resolve(msg);
      } else {
        for (const l of this.#listeners) l(msg);
      }
    };
  }

  /** Starts Chromium with the given window size and connects to its first page. */
  static async launch(chromium: ChromiumBinary, width: number, height: number): Promise<Browser> {
    const profile = await Deno.makeTempDir({ prefix: "report-chromium-" });
    const child = new Deno.Command(chromium.bin, {
      env: chromium.env,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        `--user-data-dir=${profile}`,
        `--window-size=${width},${height}`,
        "--remote-debugging-port=0",
        "about:blank",
      ],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    // Chromium prints "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID" on stderr.
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    let port: string | undefined;
    const deadline = Date.now() + 30_000;
    while (port === undefined) {
      if (Date.now() > deadline) throw new Error(`chromium did not start: ${seen.slice(-2000)}`);
      const { value, done } = await reader.read();
      if (done) throw new Error(`chromium exited: ${seen.slice(-2000)}`);
      seen += value;
      port = seen.match(/DevTools listening on ws:\/\/[^:]+:(\d+)\//)?.[1];
    }
    // Keep draining stderr so Chromium never blocks on a full pipe.
    (async () => {
      try {
        while (!(await reader.read()).done) { /* discard */ }
      } catch { /* closed */ }
    })();
    const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json() as {
      type: string;
      webSocketDebuggerUrl: string;
    }[];
    const page = targets.find((t) => t.type === "page");
    if (!page) throw new Error("chromium: no page target");
    const ws = new WebSocket(page.webSocketDebuggerUrl);
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error("chromium: DevTools WebSocket failed"));
    });
    const browser = new Browser(child, ws, profile);
    // The window has browser UI; pin the page's viewport to exactly the requested size.
    await browser.send("Emulation.setDeviceMetricsOverride", {
      width,
      height,
      deviceScaleFactor: 1,
      mobile: false,
    });
    return browser;
  }

  // deno-lint-ignore no-explicit-any
  send(method: string, params: Record<string, unknown> = {}): Promise<any> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve: (m) => resolve(m.result), reject });
      this.#ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /**
   * Opens `url`, waits for the load event and until `readyExpression` is truthy (or 30 s), then
   * evaluates `expression` and takes a screenshot.
   */
  async load(url: string, readyExpression: string, expression: string): Promise<PageResult> {
    const errors: string[] = [];
    let loaded!: () => void;
    const loadedPromise = new Promise<void>((r) => loaded = r);
    const listener = (m: CdpMessage) => {
      if (m.method === "Page.loadEventFired") loaded();
      else if (m.method === "Runtime.exceptionThrown") {
        const d = m.params.exceptionDetails;
        errors.push(`exception: ${d.exception?.description ?? d.text}`);
      } else if (
        m.method === "Runtime.consoleAPICalled" && (m.params.type === "error" ||
          m.params.type === "assert")
      ) {
        errors.push(
          `console.${m.params.type}: ${
            m.params.args.map((a: { value?: unknown; description?: string }) =>
              a.value ?? a.description
            ).join(" ")
          }`,
        );
      } else if (m.method === "Log.entryAdded" && m.params.entry.level === "error") {
        errors.push(`log: ${m.params.entry.text}`);
      }
    };
    this.#listeners.push(listener);
    try {
      await this.send("Page.enable");
      await this.send("Runtime.enable");
      await this.send("Log.enable");
      await this.send("Page.navigate", { url });
      await loadedPromise;
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        const r = await this.send("Runtime.evaluate", {
          expression: `Boolean(${readyExpression})`,
          returnByValue: true,
        });
        if (r.result.value === true) break;
        await new Promise((res) => setTimeout(res, 100));
      }
      const r = await this.send("Runtime.evaluate", { expression, returnByValue: true });
      if (r.exceptionDetails) errors.push(`check expression: ${r.exceptionDetails.text}`);
      const shot = await this.send("Page.captureScreenshot", { format: "png" });
      const bin = atob(shot.data as string);
      const screenshot = Uint8Array.from(bin, (c) => c.charCodeAt(0));
      // Let late console events arrive before reporting.
      await new Promise((res) => setTimeout(res, 200));
      return { errors, value: r.result.value, screenshot };
    } finally {
      this.#listeners = this.#listeners.filter((l) => l !== listener);
    }
  }

  /** Stops Chromium and removes its profile. */
  async close(): Promise<void> {
    try {
      this.#ws.close();
    } catch { /* already closed */ }
    try {
      this.#child.kill("SIGTERM");
    } catch { /* already gone */ }
    await this.#child.status;
    await Deno.remove(this.#profile, { recursive: true }).catch(() => {});
  }
}
