/**
 * Progress reporting on stderr: a redrawn bar on a terminal, periodic plain lines otherwise (so
 * CI logs stay readable).
 *
 * @module
 */

const enc = new TextEncoder();

/** Draws progress for one phase at a time. */
export class ProgressReporter {
  readonly #tty: boolean;
  readonly #write: (s: string) => void;
  #label = "";
  #start = 0;
  #lastDraw = 0;
  #lastPct = -1;
  #barShown = false;

  constructor(
    tty = Deno.stderr.isTerminal(),
    write = (s: string) => void Deno.stderr.writeSync(enc.encode(s)),
  ) {
    this.#tty = tty;
    this.#write = write;
  }

  /** Reports `done` of `total` for `label` (a new label starts a new phase). */
  update(label: string, done: number, total: number): void {
    const now = performance.now();
    if (label !== this.#label) {
      this.clear();
      this.#label = label;
      this.#start = now;
      this.#lastPct = -1;
      this.#lastDraw = 0;
    }
    const frac = total > 0 ? Math.min(1, Math.max(0, done / total)) : 1;
    const elapsed = (now - this.#start) / 1000;
    const eta = frac > 0 && frac < 1 ? ` eta ${fmtSeconds(elapsed * (1 - frac) / frac)}` : "";
    const text = `${label} ${done}/${total} ${(frac * 100).toFixed(0)}%`;
    if (this.#tty) {
      if (frac < 1 && now - this.#lastDraw < 100) return;
      this.#lastDraw = now;
      const width = 24, fill = Math.round(frac * width);
      this.#write(
        `\r\x1b[K${label} [${"#".repeat(fill)}${".".repeat(width - fill)}] ` +
          `${done}/${total}${eta}`,
      );
      this.#barShown = true;
      if (frac >= 1) this.clear(true);
    } else {
      const pct = Math.floor(frac * 10);
      if (pct === this.#lastPct && now - this.#lastDraw < 10_000) return;
      this.#lastPct = pct;
      this.#lastDraw = now;
      this.#write(`${text}${eta}\n`);
    }
  }

  /** Removes the bar (or ends its line, keeping it) before other output. */
  clear(keep = false): void {
    if (!this.#barShown) return;
    this.#write(keep ? "\n" : "\r\x1b[K");
    this.#barShown = false;
  }
}

function fmtSeconds(s: number): string {
  if (s < 60) return `${s.toFixed(0)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${Math.round(s % 60)}s`;
  return `${Math.floor(s / 3600)}h${Math.round((s % 3600) / 60)}m`;
}
