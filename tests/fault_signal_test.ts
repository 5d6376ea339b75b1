// A second Ctrl-C/SIGTERM exits at once, but must not leave the bundle marked `running`.
import assert from "node:assert/strict";
import { join } from "node:path";
import { MAIN, ROOT } from "./cli_helpers.ts";
import { waitForFile, writeTinySft } from "./repro_fixtures.ts";

Deno.test("a second SIGTERM exits at once and leaves the bundle marked interrupted", async () => {
  if (Deno.build.os === "windows") return;
  const dir = await Deno.makeTempDir({ prefix: "fault_signal_" });
  try {
    const manifest = await writeTinySft(dir, { steps: 5000, checkpointEvery: 5000 });
    const out = join(dir, "run");
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, "exp", manifest, "--out", out],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
      stdout: "null",
      stderr: "piped",
    }).spawn();
    await waitForFile(join(out, "metrics.jsonl"));
    child.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 5));
    try {
      child.kill("SIGTERM");
    } catch { /* it had already finished on the first one: also fine */ }
    const { code, stderr } = await child.output();
    const text = new TextDecoder().decode(stderr);
    assert.equal(code, 130, text);
    const st = JSON.parse(await Deno.readTextFile(join(out, "status.json")));
    assert.equal(st.status, "interrupted", text);
    assert.ok(st.files["metrics.jsonl"] !== undefined, "the file list survives for --resume");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
