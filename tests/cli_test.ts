import assert from "node:assert/strict";
import { join } from "node:path";
import { cli, ROOT } from "./cli_helpers.ts";

function assertNoStack(text: string): void {
  assert.doesNotMatch(text, /\n\s+at .*:\d+:\d+/, `a stack trace leaked:\n${text}`);
}

Deno.test("no command, an unknown command or an unknown flag: usage and exit 2", async () => {
  for (
    const [args, what] of [
      [[], "Usage:"],
      [["frobnicate"], 'unknown command "frobnicate"'],
      [["--frob"], 'unknown option "--frob"'],
      [["exp", "gpu-probe", "--frob"], "--frob"],
      [["exp"], "exp: missing argument"],
      [["exp", "a", "b"], 'exp: unexpected argument "b"'],
      [["exp", "gpu-probe", "--out"], "--out"],
      [["verify"], "verify: missing argument"],
      [["list", "extra"], 'list: unexpected argument "extra"'],
    ] as [string[], string][]
  ) {
    const r = await cli(args);
    assert.equal(r.code, 2, `${args.join(" ")}: exit ${r.code}\n${r.stderr}`);
    assert.ok(r.stderr.includes(what), `${args.join(" ")}: "${r.stderr}" lacks "${what}"`);
    assert.match(r.stderr, /Usage: /);
    assertNoStack(r.stderr);
  }
});

Deno.test("--help works on every command and at the top", async () => {
  const top = await cli(["--help"]);
  assert.equal(top.code, 0);
  for (const c of ["exp", "verify", "list"]) {
    assert.match(top.stdout, new RegExp(`\\n  ${c} `));
    const r = await cli([c, "--help"]);
    assert.equal(r.code, 0, c);
    assert.match(r.stdout, new RegExp(`^Usage: deno task ${c}`));
  }
});

Deno.test("a misspelt manifest key fails naming the key and its nearest spelling", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cli_test_" });
  const file = join(dir, "typo.jsonc");
  await Deno.writeTextFile(file, `{ "extends": "gpu-probe", "timing": { "repeets": 2 } }`);
  const r = await cli(["exp", file]);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /typo\.jsonc: unknown key "timing\.repeets" \(did you mean "timing\.repeats"\?\)/,
  );
  assertNoStack(r.stderr);
  const s = await cli(["exp", "gpu-probe", "--set", "tolerence=1"]);
  assert.equal(s.code, 1);
  assert.match(s.stderr, /unknown key "tolerence" \(did you mean "tolerance"\?\)/);
  const m = await cli(["exp", "no-such-experiment"]);
  assert.equal(m.code, 1);
  assert.match(m.stderr, /no-such-experiment\.jsonc: cannot read the manifest: no such file/);
  assertNoStack(m.stderr);
});

Deno.test("--dry-run prints the resolved manifest with overrides and defaults", async () => {
  const r = await cli(["exp", "gpu-probe", "--dry-run", "--set", "timing.repeats=9"]);
  assert.equal(r.code, 0, r.stderr);
  const m = JSON.parse(r.stdout);
  assert.equal(m.kind, "gpu-probe");
  assert.equal(m.timing.repeats, 9);
  assert.equal(typeof m.seed, "number");
  assert.deepEqual(Object.keys(m), [...Object.keys(m)].sort(), "canonical: sorted keys");
});

Deno.test("list shows each experiment with its description; verify rejects a non-bundle", async () => {
  const l = await cli(["list"]);
  assert.equal(l.code, 0);
  assert.match(l.stdout, /gpu-probe\s+\[gpu-probe\] \S/);
  const dir = await Deno.makeTempDir({ prefix: "cli_test_" });
  const v = await cli(["verify", dir]);
  assert.equal(v.code, 1);
  assert.match(v.stderr, /bundle\.json: missing/);
});

Deno.test("README and CI use the Deno version pinned in .deno-version", async () => {
  const pinned = (await Deno.readTextFile(join(ROOT, ".deno-version"))).trim();
  assert.match(pinned, /^\d+\.\d+\.\d+$/);
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  assert.ok(readme.includes(`npx -y deno@${pinned} task exp gpu-probe`), "README run command");
  assert.ok(readme.includes(`npx -y deno@${pinned} task test`), "README test command");
  const other = [...readme.matchAll(/deno@(\d+\.\d+\.\d+)/g)].map((m) => m[1]);
  assert.deepEqual([...new Set(other)], [pinned], "README names no other Deno version");
  const ci = await Deno.readTextFile(join(ROOT, ".ci/run"));
  assert.match(ci, /cat .*\.deno-version/);
});
