/**
 * Headless Chromium driven over the DevTools protocol (Deno's WebSocket), for the report.html
 * test: load a page, collect console errors and exceptions, evaluate checks, take a screenshot.
 */

/** Where Debian's `chromium` package (or another Chromium) is, if installed. */
export function findChromium(): string | undefined {
  const candidates = [
    Deno.env.get("CHROMIUM"),
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/bin/google-chrome",
  ];
  for (const c of candidates) {
    if (!c) continue;
    try {
      if (Deno.statSync(c).isFile) return c;
    } catch { /* not here */ }
  }
  return undefined;
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
  static async launch(bin: string, width: number, height: number): Promise<Browser> {
    const profile = await Deno.makeTempDir({ prefix: "report-chromium-" });
    const child = new Deno.Command(bin, {
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
