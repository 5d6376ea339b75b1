/**
 * The import rules of DESIGN.md ("Who may import whom"), enforced: every import in main.ts, lib/
 * and gpu/ (static, dynamic, type-only, re-exports) must go to the importing area itself or to an
 * area its line allows; the allowed graph must have no cycle; every area must be named.
 */
import assert from "node:assert/strict";
import { dirname, join, normalize, relative } from "node:path";

const ROOT = normalize(join(dirname(new URL(import.meta.url).pathname), ".."));

/** Allowed areas per area, as DESIGN.md states them. */
type Rules = Map<string, Set<string>>;

/** An import from one file to another, with the areas they belong to. */
interface Edge {
  from: string;
  to: string;
  fromArea: string;
  toArea: string;
}

/** Reads the rules list of DESIGN.md's "Who may import whom" section. */
function parseRules(design: string): Rules {
  const start = design.indexOf("## Who may import whom");
  assert.ok(start >= 0, 'DESIGN.md has no "## Who may import whom" section');
  const end = design.indexOf("\n## ", start + 1);
  const section = design.slice(start, end < 0 ? undefined : end);
  const rules: Rules = new Map();
  // A rule is a list item "- `area`: `a`, `b`, ..." whose continuation lines are indented.
  for (const item of section.split(/\n(?=- )/)) {
    const m = /^- `([^`]+)`: ([\s\S]*)$/.exec(item.trim());
    if (!m) continue;
    const allowed = [...m[2].matchAll(/`([^`]+)`/g)].map((x) => x[1]);
    rules.set(m[1], new Set(allowed));
  }
  return rules;
}

/** The area of a project file: `main.ts`, `gpu`, or `lib/<folder>`. */
function areaOf(rel: string): string {
  const parts = rel.split("/");
  if (parts[0] === "lib" && parts.length > 2) return `lib/${parts[1]}`;
  if (parts[0] === "gpu") return "gpu";
  return rel;
}

/** The source without comments (strings kept), so imports named in docs do not count. */
function stripComments(src: string): string {
  let out = "";
  let i = 0;
  while (i < src.length) {
    const c = src[i], n = src[i + 1];
    if (c === "/" && n === "/") {
      while (i < src.length && src[i] !== "\n") i++;
    } else if (c === "/" && n === "*") {
      i = src.indexOf("*/", i + 2);
      i = i < 0 ? src.length : i + 2;
    } else if (c === '"' || c === "'" || c === "`") {
      const start = i++;
      while (i < src.length && src[i] !== c) i += src[i] === "\\" ? 2 : 1;
      out += src.slice(start, ++i);
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** Every module specifier a source imports or re-exports. */
function specifiers(src: string): string[] {
  const code = stripComments(src);
  const out: string[] = [];
  const patterns = [
    /(?:^|[;\n}])\s*(?:import|export)\s[^;'"`]*?\bfrom\s*["']([^"']+)["']/g,
    /(?:^|[;\n])\s*import\s*["']([^"']+)["']/g,
    /\bimport\(\s*["']([^"']+)["']\s*\)/g,
  ];
  for (const re of patterns) for (const m of code.matchAll(re)) out.push(m[1]);
  return out;
}

async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(join(ROOT, dir))) {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...await sourceFiles(rel));
    else if (e.name.endsWith(".ts")) out.push(rel);
  }
  return out;
}

/** The project's import edges between its own files. */
async function projectEdges(): Promise<{ edges: Edge[]; external: [string, string][] }> {
  const files = ["main.ts", ...await sourceFiles("lib"), ...await sourceFiles("gpu")];
  const edges: Edge[] = [];
  const external: [string, string][] = [];
  for (const from of files) {
    for (const spec of specifiers(await Deno.readTextFile(join(ROOT, from)))) {
      if (!spec.startsWith(".")) {
        external.push([from, spec]);
        continue;
      }
      const to = relative(ROOT, normalize(join(ROOT, dirname(from), spec)));
      edges.push({ from, to, fromArea: areaOf(from), toArea: areaOf(to) });
    }
  }
  return { edges, external };
}

/** A cycle in a directed graph, as a path, or null. */
function findCycle(graph: Map<string, Set<string>>): string[] | null {
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  const visit = (v: string): string[] | null => {
    if (state.get(v) === "done") return null;
    if (state.get(v) === "open") return [...path.slice(path.indexOf(v)), v];
    state.set(v, "open");
    path.push(v);
    for (const w of graph.get(v) ?? []) {
      const c = visit(w);
      if (c) return c;
    }
    path.pop();
    state.set(v, "done");
    return null;
  };
  for (const v of graph.keys()) {
    const c = visit(v);
    if (c) return c;
  }
  return null;
}

/** Everything wrong with `edges` under `rules`; empty when the code keeps the rules. */
function checkArchitecture(rules: Rules, edges: readonly Edge[]): string[] {
  const problems: string[] = [];
  const cycle = findCycle(rules);
  if (cycle) problems.push(`the rules have a cycle: ${cycle.join(" -> ")}`);
  for (const [area, allowed] of rules) {
    for (const a of allowed) if (!rules.has(a)) problems.push(`${area} allows unknown area ${a}`);
  }
  const actual = new Map<string, Set<string>>();
  for (const e of edges) {
    for (const area of [e.fromArea, e.toArea]) {
      if (!rules.has(area)) {
        problems.push(`${area} (${e.from} -> ${e.to}) has no rule in DESIGN.md`);
      }
    }
    if (e.fromArea === e.toArea) continue;
    if (!actual.has(e.fromArea)) actual.set(e.fromArea, new Set());
    actual.get(e.fromArea)!.add(e.toArea);
    if (rules.has(e.fromArea) && !rules.get(e.fromArea)!.has(e.toArea)) {
      problems.push(
        `forbidden import: ${e.from} -> ${e.to} (${e.fromArea} may not use ${e.toArea})`,
      );
    }
  }
  const actualCycle = findCycle(actual);
  if (actualCycle) problems.push(`the imports have a cycle: ${actualCycle.join(" -> ")}`);
  return [...new Set(problems)];
}

const edge = (from: string, to: string): Edge => ({
  from,
  to,
  fromArea: areaOf(from),
  toArea: areaOf(to),
});

Deno.test("architecture: every import in main.ts, lib/ and gpu/ keeps DESIGN.md's rules", async () => {
  const rules = parseRules(await Deno.readTextFile(join(ROOT, "DESIGN.md")));
  assert.ok(rules.size >= 15, `only ${rules.size} rules read from DESIGN.md`);
  const { edges, external } = await projectEdges();
  assert.ok(edges.length > 300, `only ${edges.length} imports found: the scanner is broken`);
  const problems = checkArchitecture(rules, edges);
  assert.deepEqual(problems, [], problems.join("\n"));
  // No JSR (unreachable from our machines) and no npm packages in the GPU layer.
  for (const [from, spec] of external) {
    assert.ok(!spec.startsWith("jsr:"), `${from} imports ${spec}: JSR is not reachable here`);
    if (areaOf(from) === "gpu") assert.ok(spec.startsWith("node:"), `${from} imports ${spec}`);
  }
});

Deno.test("architecture: the checker catches a forbidden edge, a cycle and an unnamed area", () => {
  const rules: Rules = new Map([
    ["lib/rl", new Set(["lib/model"])],
    ["lib/model", new Set(["gpu"])],
    ["gpu", new Set<string>()],
  ]);
  assert.deepEqual(checkArchitecture(rules, [edge("lib/rl/a.ts", "lib/model/b.ts")]), []);
  const wrong = checkArchitecture(rules, [edge("lib/model/b.ts", "lib/rl/a.ts")]);
  assert.ok(wrong.some((p) => p.startsWith("forbidden import: lib/model/b.ts -> lib/rl/a.ts")));
  assert.ok(wrong.some((p) => p.includes("cycle")) === false);
  const both = checkArchitecture(rules, [
    edge("lib/rl/a.ts", "lib/model/b.ts"),
    edge("lib/model/b.ts", "lib/rl/a.ts"),
  ]);
  assert.ok(both.some((p) => p.startsWith("the imports have a cycle")), both.join("\n"));
  const cyclicRules: Rules = new Map([...rules, ["gpu", new Set(["lib/rl"])]]);
  assert.ok(checkArchitecture(cyclicRules, []).some((p) => p.startsWith("the rules have a cycle")));
  const unnamed = checkArchitecture(rules, [edge("lib/rl/a.ts", "lib/bench/c.ts")]);
  assert.ok(unnamed.some((p) => p.includes("lib/bench") && p.includes("no rule")));
});

Deno.test("architecture: the scanner sees static, type-only, dynamic and re-exported imports only", () => {
  const src = [
    'import { a } from "./a.ts";',
    'import type { B } from "../b/b.ts";',
    "import {\n  c,\n  d,\n} from './c.ts';",
    'export { e } from "./e.ts";',
    'import "./side.ts";',
    'const f = await import("../f.ts");',
    '// import { g } from "./commented.ts";',
    '/** see `import("./doc.ts")` */',
    'const s = "import { h } from \\"./in-string.ts\\"";',
  ].join("\n");
  assert.deepEqual(specifiers(src).sort(), [
    "../b/b.ts",
    "../f.ts",
    "./a.ts",
    "./c.ts",
    "./e.ts",
    "./side.ts",
  ]);
});
