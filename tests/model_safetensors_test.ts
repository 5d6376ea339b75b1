import assert from "node:assert/strict";
import { openCheckpoint } from "../lib/model/safetensors/checkpoint_folder.ts";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../lib/model/safetensors/dtype.ts";
import { ModelFormatError } from "../lib/model/safetensors/format.ts";
import { openSafetensors } from "../lib/model/safetensors/header.ts";
import { readTensorF32, streamTensorF32 } from "../lib/model/safetensors/read.ts";
import { parseJsonStrict } from "../lib/model/safetensors/strict_json.ts";
import { writeSafetensors } from "../lib/model/safetensors/write.ts";
import { shardName, tinyTestConfig, writeRandomModel } from "../lib/model/random_model.ts";
import { randn } from "./helpers.ts";

const enc = new TextEncoder();

/** Builds safetensors bytes from a header (object or raw text) and a data section. */
function build(header: unknown, data: Uint8Array, headerLen?: bigint): Uint8Array {
  const h = enc.encode(typeof header === "string" ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, headerLen ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

async function tmp(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "st_test_" });
}

/** Asserts `p` rejects with a ModelFormatError whose message contains every `parts`. */
async function rejectsNaming(p: Promise<unknown>, ...parts: string[]): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof ModelFormatError, `expected ModelFormatError, got ${e}`);
    for (const part of parts) {
      assert.ok(e.message.includes(part), `message ${JSON.stringify(e.message)} lacks ${part}`);
    }
    return true;
  });
}

const u8 = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

Deno.test("reads a hand-built file: F32, BF16 and F16 tensors, metadata, row ranges", async () => {
  const dir = await tmp();
  const a = new Float32Array([1.5, -2, 3.25, 0, 7, 8]); // [3, 2]
  const b = new Uint16Array([0x3f80, 0xc040, 0x4049]); // bf16: 1, -3, 3.140625
  const c = new Uint16Array([0x3c00, 0x0001]); // f16: 1, 2^-24
  const data = new Uint8Array(24 + 6 + 4);
  data.set(u8(a), 0);
  data.set(u8(b), 24);
  data.set(u8(c), 30);
  const header = {
    __metadata__: { format: "pt" },
    "x.b": { dtype: "BF16", shape: [3], data_offsets: [24, 30] },
    "x.a": { dtype: "F32", shape: [3, 2], data_offsets: [0, 24] },
    "x.c": { dtype: "F16", shape: [1, 2], data_offsets: [30, 34] },
  };
  const path = `${dir}/m.safetensors`;
  await Deno.writeFile(path, build(header, data));
  const f = await openSafetensors(path);
  assert.deepEqual(f.metadata, { format: "pt" });
  assert.equal(f.fileSize, 8 + JSON.stringify(header).length + 34);
  assert.equal(f.dataOffset, 8 + JSON.stringify(header).length);
  assert.deepEqual(f.tensors.get("x.b"), {
    name: "x.b",
    dtype: "BF16",
    shape: [3],
    begin: 24,
    end: 30,
  });
  assert.deepEqual(Array.from(await readTensorF32(f, "x.a")), Array.from(a));
  assert.deepEqual(Array.from(await readTensorF32(f, "x.b")), [1, -3, 3.140625]);
  assert.deepEqual(Array.from(await readTensorF32(f, "x.c")), [1, 2 ** -24]);
  assert.deepEqual(Array.from(await readTensorF32(f, "x.a", { rowStart: 1, rowCount: 2 })), [
    3.25,
    0,
    7,
    8,
  ]);
  assert.deepEqual(Array.from(await readTensorF32(f, "x.a", { rowStart: 2 })), [7, 8]);
  await assert.rejects(readTensorF32(f, "x.a", { rowStart: 2, rowCount: 2 }), RangeError);
  await rejectsNaming(readTensorF32(f, "nope"), path, "nope");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("writer output: sorted, 8-byte aligned, deterministic, read back exactly", async () => {
  const dir = await tmp();
  const w = randn(5 * 7, 3);
  const v = randn(9, 4);
  const tensors = [
    { name: "w", dtype: "F32" as const, shape: [5, 7], data: w },
    { name: "b16", dtype: "BF16" as const, shape: [9], data: v },
    { name: "h16", dtype: "F16" as const, shape: [3, 3], data: v },
    { name: "empty", dtype: "F32" as const, shape: [0, 4], data: new Float32Array(0) },
    { name: "raw", dtype: "BF16" as const, shape: [2], data: new Uint16Array([0x3f80, 0x4000]) },
  ];
  await writeSafetensors(`${dir}/a.safetensors`, tensors, { format: "pt" });
  await writeSafetensors(`${dir}/b.safetensors`, [...tensors].reverse(), { format: "pt" });
  const a = await Deno.readFile(`${dir}/a.safetensors`);
  assert.deepEqual(a, await Deno.readFile(`${dir}/b.safetensors`));
  const f = await openSafetensors(`${dir}/a.safetensors`);
  assert.equal(f.dataOffset % 8, 0);
  const names = [...f.tensors.values()].sort((x, y) => x.begin - y.begin || x.end - y.end)
    .filter((t) => t.end > t.begin).map((t) => t.name);
  assert.deepEqual(names, ["b16", "h16", "raw", "w"]);
  assert.deepEqual(await readTensorF32(f, "w"), w);
  assert.deepEqual(await readTensorF32(f, "b16"), bf16ToF32(f32ToBf16(v)));
  assert.deepEqual(await readTensorF32(f, "h16"), f16ToF32(f32ToF16(v)));
  assert.deepEqual(Array.from(await readTensorF32(f, "raw")), [1, 2]);
  assert.equal((await readTensorF32(f, "empty")).length, 0);
  // no temp file left behind
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
    "a.safetensors",
    "b.safetensors",
  ]);
  await rejectsNaming(
    writeSafetensors(`${dir}/c.safetensors`, [{ name: "q", dtype: "F32", shape: [3], data: w }]),
    "c.safetensors",
    '"q"',
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("every corrupt header is refused naming the file and the tensor or field", async () => {
  const dir = await tmp();
  const d16 = new Uint8Array(16);
  const ok = (o: number[] = [0, 16], dtype = "F32", shape: unknown = [4]) => ({
    t: { dtype, shape, data_offsets: o },
  });
  const cases: [string, Uint8Array, string[]][] = [
    ["short", new Uint8Array(5), ["too short"]],
    ["beyond", build(ok(), d16, 10_000n), ["runs past the end"]],
    ["cap", build(ok(), d16, 200n * 1024n * 1024n), ["exceeds", "cap"]],
    ["badjson", build('{"t": {"dtype": "F32",', d16), ["invalid JSON"]],
    ["array", build("[1, 2]", d16), ["not a JSON object"]],
    ["utf8", build("", d16).fill(0xff, 8, 8), ["not a JSON object"]],
    ["unknown", build(ok(undefined, "Q7"), d16), ['"t"', "unknown dtype", "Q7"]],
    ["i64", build(ok(undefined, "I64", [2]), d16), ['"t"', "I64", "not supported"]],
    ["neg", build(ok(undefined, "F32", [-4]), d16), ['"t"', "shape"]],
    ["frac", build(ok(undefined, "F32", [2.5]), d16), ['"t"', "shape"]],
    ["strshape", build(ok(undefined, "F32", ["4"]), d16), ['"t"', "shape"]],
    ["size", build(ok(undefined, "F32", [3]), d16), ['"t"', "needs 12 bytes"]],
    ["outside", build(ok([0, 32], "F32", [8]), d16), ['"t"', "outside"]],
    ["backwards", build(ok([16, 0]), d16), ['"t"', "end before begin"]],
    [
      "overlap",
      build({
        a: { dtype: "F32", shape: [3], data_offsets: [0, 12] },
        b: { dtype: "F32", shape: [2], data_offsets: [8, 16] },
      }, d16),
      ['"b"', '"a"', "overlaps"],
    ],
    [
      "hole",
      build({
        a: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
        b: { dtype: "F32", shape: [2], data_offsets: [8, 16] },
      }, d16),
      ['"b"', "hole"],
    ],
    ["tail", build(ok([0, 12], "F32", [3]), d16), ["cover only 12", '"t"']],
    [
      "dupkey",
      build(
        '{"t": {"dtype":"F32","shape":[4],"data_offsets":[0,16]},' +
          ' "t": {"dtype":"F32","shape":[4],"data_offsets":[0,16]}}',
        d16,
      ),
      ["duplicate key", '"t"'],
    ],
    ["meta", build({ __metadata__: { a: 1 }, ...ok() }, d16), ["__metadata__.a"]],
    ["entry", build({ t: 5 }, d16), ['"t"', "not an object"]],
  ];
  // bad UTF-8: a header that is one invalid byte
  const utf8 = new Uint8Array(8 + 1 + 16);
  new DataView(utf8.buffer).setBigUint64(0, 1n, true);
  utf8[8] = 0xff;
  cases[5] = ["utf8", utf8, ["not valid UTF-8"]];
  for (const [name, bytes, parts] of cases) {
    const path = `${dir}/${name}.safetensors`;
    await Deno.writeFile(path, bytes);
    await rejectsNaming(openSafetensors(path), path, ...parts);
  }
  // A writer-produced file, truncated, names the tensor that no longer fits.
  const path = `${dir}/trunc.safetensors`;
  await writeSafetensors(path, [
    { name: "first", dtype: "F32", shape: [4], data: new Float32Array(4) },
    { name: "second", dtype: "F32", shape: [4], data: new Float32Array(4) },
  ]);
  const full = await Deno.readFile(path);
  await Deno.writeFile(path, full.subarray(0, full.length - 4));
  await rejectsNaming(openSafetensors(path), path, '"second"', "outside");
  // Truncated after opening: the read itself fails naming file and tensor.
  await Deno.writeFile(path, full);
  const f = await openSafetensors(path);
  await Deno.writeFile(path, full.subarray(0, full.length - 4));
  await rejectsNaming(readTensorF32(f, "second"), path, '"second"', "truncated");
  await rejectsNaming(openSafetensors(`${dir}/absent.safetensors`), "absent.safetensors");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("strict JSON matches JSON.parse and refuses duplicate keys", () => {
  const texts = [
    '{"a": [1, -2.5e3, true, false, null, "x\\u00e9\\"y"], "b": {"c": {}}, "d": []}',
    "  [ ] ",
    '"__proto__"',
    '{"__proto__": 1}',
  ];
  for (const t of texts) assert.deepEqual(parseJsonStrict(t, "t"), JSON.parse(t));
  assert.ok(Object.hasOwn(parseJsonStrict('{"__proto__": 1}', "t") as object, "__proto__"));
  for (const bad of ['{"a":1,"a":2}', "{", "[1,]", "01", "1 2", '{"a" 1}', "nul"]) {
    assert.throws(() => parseJsonStrict(bad, "src.json"), (e: Error) => {
      assert.ok(e instanceof ModelFormatError && e.message.startsWith("src.json"));
      return true;
    });
  }
});

Deno.test("BF16 and F16 widening is exact on chosen bit patterns", () => {
  const bits = (f: Float32Array) => Array.from(new Uint32Array(f.buffer));
  const f16 = new Uint16Array([
    0x0000,
    0x8000,
    0x0001,
    0x03ff,
    0x0400,
    0x3c00,
    0xc000,
    0x7bff,
    0x7c00,
    0xfc00,
    0x7e00,
    0x7c01,
    0x3555,
  ]);
  const w16 = f16ToF32(f16);
  assert.ok(Object.is(w16[0], 0) && Object.is(w16[1], -0));
  assert.deepEqual(Array.from(w16.slice(2, 10)), [
    2 ** -24,
    1023 * 2 ** -24,
    2 ** -14,
    1,
    -2,
    65504,
    Infinity,
    -Infinity,
  ]);
  assert.deepEqual(bits(w16.slice(10, 12)), [0x7fc00000, 0x7f802000]); // nan payloads kept
  assert.equal(w16[12], 0.333251953125);
  const b16 = new Uint16Array([0x0000, 0x8000, 0x0001, 0x3f80, 0x4049, 0x7f80, 0xff80, 0x7fc0]);
  const wb = bf16ToF32(b16);
  assert.ok(Object.is(wb[0], 0) && Object.is(wb[1], -0));
  assert.deepEqual(Array.from(wb.slice(2, 7)), [2 ** -133, 1, 3.140625, Infinity, -Infinity]);
  assert.ok(Number.isNaN(wb[7]));
  // Narrowing inverts widening on every non-nan 16-bit pattern.
  const all = new Uint16Array(65536).map((_, i) => i);
  const backF16 = f32ToF16(f16ToF32(all)), backBf16 = f32ToBf16(bf16ToF32(all));
  for (let h = 0; h < 65536; h++) {
    const f16nan = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
    const bf16nan = (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;
    if (!f16nan) assert.equal(backF16[h], h, `f16 ${h.toString(16)}`);
    else assert.ok(Number.isNaN(f16ToF32(new Uint16Array([backF16[h]]))[0]));
    if (!bf16nan) assert.equal(backBf16[h], h, `bf16 ${h.toString(16)}`);
    else assert.ok(Number.isNaN(bf16ToF32(new Uint16Array([backBf16[h]]))[0]));
  }
});

Deno.test("narrowing rounds to nearest even, including f16 subnormals and overflow", () => {
  const hx = (a: Uint16Array) => Array.from(a);
  assert.deepEqual(
    hx(f32ToBf16(new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, NaN]))),
    [0x3f80, 0x3f82, 0x3f81, 0x7fc0],
  );
  assert.deepEqual(
    hx(f32ToF16(new Float32Array([1 + 2 ** -11, 1 + 3 * 2 ** -11, 65519, 65520, 1e6, -1e-10]))),
    [0x3c00, 0x3c02, 0x7bff, 0x7c00, 0x7c00, 0x8000],
  );
  assert.deepEqual(
    hx(f32ToF16(new Float32Array([2 ** -25, 1.5 * 2 ** -25, 3 * 2 ** -25, 2 ** -14 - 2 ** -26]))),
    [0x0000, 0x0001, 0x0002, 0x0400],
  );
  // Against the platform's own f16 rounding, where this Deno has it.
  const f16round = (Math as unknown as { f16round?: (x: number) => number }).f16round;
  if (f16round) {
    const xs = randn(20000, 9, 3).map((x, i) => x * 2 ** ((i % 40) - 26));
    const got = f16ToF32(f32ToF16(xs));
    for (let i = 0; i < xs.length; i++) assert.ok(Object.is(got[i], f16round(xs[i])), `${xs[i]}`);
  }
});

Deno.test("streaming read equals whole read for every chunk size", async () => {
  const dir = await tmp();
  const x = randn(1000, 5);
  const path = `${dir}/s.safetensors`;
  await writeSafetensors(path, [
    { name: "a", dtype: "F32", shape: [10, 100], data: x },
    { name: "b", dtype: "BF16", shape: [1000], data: x },
    { name: "c", dtype: "F16", shape: [1000], data: x },
  ]);
  const f = await openSafetensors(path);
  for (const name of ["a", "b", "c"]) {
    const whole = await readTensorF32(f, name);
    for (const chunk of [1, 7, 64, 999, 4000, 1 << 20]) {
      const got = new Float32Array(whole.length);
      let next = 0;
      await streamTensorF32(f, name, chunk, async (part, off) => {
        assert.equal(off, next);
        got.set(part, off);
        next += part.length;
        await Promise.resolve();
      });
      assert.equal(next, whole.length);
      assert.deepEqual(got, whole, `${name} chunk ${chunk}`);
    }
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("sharded checkpoints equal unsharded ones; the index is validated", async () => {
  const root = await tmp();
  const config = tinyTestConfig();
  await writeRandomModel(`${root}/one`, config, { dtype: "BF16", seed: 7 });
  await writeRandomModel(`${root}/three`, config, { dtype: "BF16", seed: 7, shards: 3 });
  const one = await openCheckpoint(`${root}/one`);
  const three = await openCheckpoint(`${root}/three`);
  assert.deepEqual([...three.tensors.keys()].sort(), [...one.tensors.keys()].sort());
  assert.equal(new Set([...three.tensors.values()].map((t) => t.file.path)).size, 3);
  for (const [name, { file }] of one.tensors) {
    const t = three.tensors.get(name)!;
    assert.deepEqual(await readTensorF32(t.file, name), await readTensorF32(file, name));
  }
  const d = `${root}/three`;
  const indexPath = `${d}/model.safetensors.index.json`;
  const index = JSON.parse(await Deno.readTextFile(indexPath));
  const writeIndex = (text: string) => Deno.writeTextFile(indexPath, text);
  const original = JSON.stringify(index);
  // duplicate entry in the weight map
  await writeIndex(original.replace('"weight_map":{', '"weight_map":{"model.norm.weight":"x",'));
  await rejectsNaming(openCheckpoint(d), indexPath, "duplicate key", "model.norm.weight");
  // shard file missing
  const s2 = shardName(1, 3);
  await Deno.rename(`${d}/${s2}`, `${d}/gone`);
  await writeIndex(original);
  await rejectsNaming(openCheckpoint(d), indexPath, s2, "missing");
  await Deno.rename(`${d}/gone`, `${d}/${s2}`);
  // tensor claimed by a shard that lacks it
  const moved = { ...index, weight_map: { ...index.weight_map } };
  moved.weight_map["model.norm.weight"] = shardName(0, 3);
  await writeIndex(JSON.stringify(moved));
  await rejectsNaming(openCheckpoint(d), indexPath, "model.norm.weight", shardName(0, 3));
  // a tensor in a shard that the index does not list
  const dropped = { ...index, weight_map: { ...index.weight_map } };
  delete dropped.weight_map["model.norm.weight"];
  await writeIndex(JSON.stringify(dropped));
  await rejectsNaming(openCheckpoint(d), "model.norm.weight", "not assigned");
  // path escapes
  const escape = { ...index, weight_map: { ...index.weight_map, x: "../one/model.safetensors" } };
  await writeIndex(JSON.stringify(escape));
  await rejectsNaming(openCheckpoint(d), indexPath, '"x"');
  await writeIndex("[]");
  await rejectsNaming(openCheckpoint(d), indexPath, "weight_map");
  await writeIndex(original);
  await openCheckpoint(d);
  await rejectsNaming(openCheckpoint(`${root}/nothing`), "nothing", "model.safetensors");
  await Deno.remove(root, { recursive: true });
});

Deno.test("writeRandomModel is byte-for-byte deterministic", async () => {
  const root = await tmp();
  const config = tinyTestConfig({ numLayers: 1 });
  for (const sub of ["a", "b"]) {
    await writeRandomModel(`${root}/${sub}`, config, { dtype: "F16", seed: 3, shards: 2 });
  }
  await writeRandomModel(`${root}/c`, config, { dtype: "F16", seed: 4, shards: 2 });
  const files = [...Deno.readDirSync(`${root}/a`)].map((e) => e.name).sort();
  assert.deepEqual(files, [
    "config.json",
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
    "model.safetensors.index.json",
  ]);
  for (const f of files) {
    assert.deepEqual(await Deno.readFile(`${root}/a/${f}`), await Deno.readFile(`${root}/b/${f}`));
  }
  assert.notDeepEqual(
    await Deno.readFile(`${root}/a/${files[1]}`),
    await Deno.readFile(`${root}/c/${files[1]}`),
  );
  await Deno.remove(root, { recursive: true });
});
