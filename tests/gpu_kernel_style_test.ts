import assert from "node:assert/strict";
import { chooseKernelStyle } from "../gpu/device.ts";

/** Runs `f` with SELFPLAY_KERNELS set to `value` (or unset), restoring it afterwards. */
function withEnv(value: string | undefined, f: () => void): void {
  const old = Deno.env.get("SELFPLAY_KERNELS");
  if (value === undefined) Deno.env.delete("SELFPLAY_KERNELS");
  else Deno.env.set("SELFPLAY_KERNELS", value);
  try {
    f();
  } finally {
    if (old === undefined) Deno.env.delete("SELFPLAY_KERNELS");
    else Deno.env.set("SELFPLAY_KERNELS", old);
  }
}

Deno.test("kernel style: adapter kind by default, SELFPLAY_KERNELS overrides, an explicit choice wins", () => {
  withEnv(undefined, () => {
    assert.equal(chooseKernelStyle(undefined, true), "serial");
    assert.equal(chooseKernelStyle(undefined, false), "workgroup");
  });
  withEnv("workgroup", () => assert.equal(chooseKernelStyle(undefined, true), "workgroup"));
  withEnv("serial", () => {
    assert.equal(chooseKernelStyle(undefined, false), "serial");
    assert.equal(chooseKernelStyle("workgroup", false), "workgroup");
  });
  withEnv(
    "fast",
    () =>
      assert.throws(() => chooseKernelStyle(undefined, true), /SELFPLAY_KERNELS=fast: expected/),
  );
});
