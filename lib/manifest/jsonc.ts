/**
 * JSON with comments: `//` and `/* *\/` comments and trailing commas are allowed, everything else
 * is strict JSON. Errors carry line and column.
 *
 * @module
 */
import { ManifestError } from "./errors.ts";

/**
 * Blanks out comments and trailing commas with spaces (newlines kept) so that positions in the
 * result are positions in the original text.
 */
function blankCommentsAndTrailingCommas(text: string, file: string): string {
  const out = text.split("");
  let i = 0;
  let lastSignificant = -1; // index of the last non-space char outside comments
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === "\\") i++;
        if (text[i] === "\n") break; // JSON.parse reports the unterminated string
        i++;
      }
      lastSignificant = i;
      i++;
    } else if (c === "/" && text[i + 1] === "/") {
      while (i < text.length && text[i] !== "\n") out[i++] = " ";
    } else if (c === "/" && text[i + 1] === "*") {
      const start = i;
      out[i++] = " ";
      out[i++] = " ";
      while (i < text.length && !(text[i] === "*" && text[i + 1] === "/")) {
        if (text[i] !== "\n") out[i] = " ";
        i++;
      }
      if (i >= text.length) {
        const { line, col } = lineCol(text, start);
        throw new ManifestError(`${file}:${line}:${col}`, "unterminated /* comment");
      }
      out[i++] = " ";
      out[i++] = " ";
    } else if (c === "}" || c === "]") {
      if (lastSignificant >= 0 && text[lastSignificant] === ",") out[lastSignificant] = " ";
      lastSignificant = i++;
    } else {
      if (!/\s/.test(c)) lastSignificant = i;
      i++;
    }
  }
  return out.join("");
}

function lineCol(text: string, pos: number): { line: number; col: number } {
  const before = text.slice(0, pos);
  const line = before.split("\n").length;
  return { line, col: pos - before.lastIndexOf("\n") };
}

/**
 * Parses JSONC text. Throws {@link ManifestError} naming `file`, line and column on bad syntax.
 */
export function parseJsonc(text: string, file: string): unknown {
  // A UTF-8 byte order mark (some Windows editors write one) is not content.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const json = blankCommentsAndTrailingCommas(text, file);
  const first = json.trimStart()[0];
  if (first === undefined) {
    throw new ManifestError(file, "the file is empty; expected a JSON object");
  }
  if (first !== "{" && first !== "[") {
    // Not JSONC at all (a path to the wrong file): say so without echoing what it holds.
    throw new ManifestError(file, 'not a JSONC manifest: it does not start with "{"');
  }
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (e) {
    const msg = (e as Error).message;
    const m = /position (\d+)/.exec(msg);
    const where = m
      ? (({ line, col }) => `${file}:${line}:${col}`)(lineCol(json, Number(m[1])))
      : file;
    // V8 quotes a snippet of the text ('"root:x:0:0"... is not valid JSON'): leave it out.
    const what = msg.replace(/\s*in JSON at position \d+.*$/s, "").replace(/^JSON\.parse: /, "")
      .replace(/, ".*"(\.\.\.)? is not valid JSON$/s, "");
    throw new ManifestError(where, `invalid JSONC: ${what}`);
  }
  const big = nonFinitePath(value, []);
  if (big) {
    throw new ManifestError(
      file,
      `"${big}": the number is out of range (a finite double is at most about 1.8e308)`,
    );
  }
  return value;
}

/**
 * The dotted path of the first non-finite number in a parsed JSON value: JSON has no Infinity,
 * so one there came from a literal too large for a double (1e400).
 */
export function nonFinitePath(value: unknown, path: string[]): string | null {
  if (typeof value === "number") return Number.isFinite(value) ? null : path.join(".") || "(top)";
  if (value === null || typeof value !== "object") return null;
  for (const [k, v] of Object.entries(value)) {
    const found = nonFinitePath(v, [...path, k]);
    if (found) return found;
  }
  return null;
}
