import assert from "node:assert/strict";
import { DatasetError, loadInstructions, modelOutputsJson } from "../lib/data/instructions.ts";

async function withFile(text: string, ext: string, f: (p: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  const p = `${dir}/data.${ext}`;
  await Deno.writeTextFile(p, text);
  try {
    await f(p);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("Alpaca JSON and JSONL load; input is appended to the prompt", async () => {
  await withFile(
    JSON.stringify([
      { instruction: "Add", input: "1 and 2", output: "3" },
      { instruction: "Say hi", dataset: "koala" },
    ]),
    "json",
    async (p) => {
      const d = await loadInstructions(p);
      assert.equal(d[0].prompt, "Add\n\n1 and 2");
      assert.equal(d[0].dataset, "default");
      assert.equal(d[1].prompt, "Say hi");
      assert.equal(d[1].dataset, "koala");
    },
  );
  await withFile('{"instruction":"a"}\n\n{"instruction":"b","input":""}\n', "jsonl", async (p) => {
    const d = await loadInstructions(p);
    assert.deepEqual(d.map((x) => x.prompt), ["a", "b"]);
  });
});

Deno.test("every bad input names the file, the record and the field", async () => {
  const cases: [string, string, RegExp][] = [
    ["", "json", /is empty/],
    ["[{]", "json", /not valid JSON/],
    ['{"instruction":"a"}\n{oops}\n', "jsonl", /:2: not valid JSON/],
    ["[1]", "json", /record 0: expected an object/],
    ['[{"input":"x"}]', "json", /record 0: missing field "instruction"/],
    ['[{"instruction":5}]', "json", /"instruction" must be a string/],
    ['[{"instruction":"  "}]', "json", /"instruction" is empty/],
    ['[{"instruction":"a","dataset":3}]', "json", /"dataset" must be a string/],
    ["[]", "json", /no records/],
  ];
  for (const [text, ext, re] of cases) {
    await withFile(text, ext, async (p) => {
      await assert.rejects(loadInstructions(p), (e: Error) => {
        assert.ok(e instanceof DatasetError, `${text}: ${e}`);
        assert.match(e.message, re);
        if (!/no records/.test(e.message)) assert.ok(e.message.includes(p), e.message);
        return true;
      });
    });
  }
  await assert.rejects(loadInstructions("/nonexistent/x.json"), /no such file/);
});

Deno.test("model_outputs.json in AlpacaEval's format", () => {
  const items = [{ prompt: "p", instruction: "p", input: "", output: "", dataset: "oasst" }];
  const j = JSON.parse(modelOutputsJson(items, ["answer"], "lsp"));
  assert.deepEqual(j, [{ instruction: "p", output: "answer", generator: "lsp", dataset: "oasst" }]);
  assert.throws(() => modelOutputsJson(items, [], "x"));
});
