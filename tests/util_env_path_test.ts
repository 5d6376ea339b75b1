/** Paths anchored at an environment variable (`${NAME}/rest`), as a sweep's members name others. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { envAnchor, expandEnvAnchor } from "../lib/util/env_path.ts";
import { ModelSourceSchema, resolveModelSource } from "../lib/data/model_source.ts";

Deno.test("a leading ${NAME} is the folder in NAME; other paths are left as they are", () => {
  Deno.env.set("SELFPLAY_TEST_ANCHOR", "/data/sweep/");
  try {
    assert.equal(
      expandEnvAnchor("${SELFPLAY_TEST_ANCHOR}/members/a/s0", "f"),
      "/data/sweep/members/a/s0",
    );
    assert.equal(expandEnvAnchor("${SELFPLAY_TEST_ANCHOR}", "f"), "/data/sweep");
    assert.equal(
      expandEnvAnchor("results/x/${SELFPLAY_TEST_ANCHOR}", "f"),
      "results/x/${SELFPLAY_TEST_ANCHOR}",
    );
    assert.equal(envAnchor("${SELFPLAY_TEST_ANCHOR}/x"), "SELFPLAY_TEST_ANCHOR");
    assert.equal(envAnchor("$SELFPLAY_TEST_ANCHOR/x"), null);
  } finally {
    Deno.env.delete("SELFPLAY_TEST_ANCHOR");
  }
  assert.throws(
    () => expandEnvAnchor("${SELFPLAY_TEST_ANCHOR}/x", "model.bundle"),
    /model\.bundle: "\$\{SELFPLAY_TEST_ANCHOR\}\/x" starts at the environment variable SELFPLAY_TEST_ANCHOR, which is not set/,
  );
});

Deno.test("a model source's bundle may start at an environment variable", () => {
  const root = Deno.makeTempDirSync({ prefix: "env_path_test_" });
  const bundle = join(root, "members", "lsp", "s0");
  Deno.mkdirSync(bundle, { recursive: true });
  Deno.writeTextFileSync(join(bundle, "status.json"), JSON.stringify({ status: "completed" }));
  Deno.writeTextFileSync(join(bundle, "bundle.json"), "{}");
  const src = ModelSourceSchema.parse({ bundle: "${SELFPLAY_TEST_SWEEP}/members/lsp/s0" });
  assert.throws(() => resolveModelSource(src, "model"), /SELFPLAY_TEST_SWEEP, which is not set/);
  Deno.env.set("SELFPLAY_TEST_SWEEP", root);
  try {
    assert.deepEqual(resolveModelSource(src, "model"), { kind: "bundle", bundle, rootHash: "" });
  } finally {
    Deno.env.delete("SELFPLAY_TEST_SWEEP");
  }
});
