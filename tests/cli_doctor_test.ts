// `deno task doctor` (adapter, backend, kernel style, advice) and a quiet stderr on GPU commands.
import assert from "node:assert/strict";
import { join } from "node:path";
import { cli, MAIN } from "./cli_helpers.ts";

Deno.test("doctor prints the adapter, backend, kernel style and what would make runs faster", async () => {
  const r = await cli(["doctor"]);
  assert.equal(r.code, 0, r.stderr);
  for (const key of ["deno:", "adapter:", "backend:", "kernels:", "limits:", "faster:"]) {
    assert.match(r.stdout, new RegExp(`^${key} `, "m"), `no "${key}" line:\n${r.stdout}`);
  }
  assert.match(r.stdout, /^kernels:\s+(serial|workgroup) /m);
  assert.match(r.stdout, /^backend:\s+(vulkan|gl|metal|dx12)/m);
  const gl = await cli(["doctor"], { DENO_WEBGPU_BACKEND: "gl" });
  assert.equal(gl.code, 0, gl.stderr);
  assert.match(gl.stdout, /^backend:\s+gl \(DENO_WEBGPU_BACKEND\)/m);
  assert.match(gl.stdout, /^faster:\s+the GL fallback is in use/m);
});

Deno.test("a GPU command without XDG_RUNTIME_DIR prints no Mesa warning", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "doctor"],
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: Deno.env.get("HOME") ?? "/root",
      NO_COLOR: "1",
      DENO_DIR: Deno.env.get("DENO_DIR") ?? join(Deno.env.get("HOME") ?? "/root", ".cache/deno"),
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  assert.doesNotMatch(stderr, /XDG_RUNTIME_DIR/);
  assert.equal(stderr.trim(), "", `unexpected stderr:\n${stderr}`);
});
