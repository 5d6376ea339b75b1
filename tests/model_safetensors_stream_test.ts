/**
 * The streaming safetensors writer (writeSafetensorsTo) and checkpoints that stream straight
 * into their destination: same bytes as the path-based writers, lazy tensors produced one at a
 * time in file order, bad input refused before a byte is written.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { getGpu } from "../gpu/device.ts";
import { BundleWriter } from "../lib/bundle/writer.ts";
import { hashFile } from "../lib/util/hash_file.ts";
import { LlamaModel } from "../lib/model/llama.ts";
import { ForwardPass } from "../lib/model/forward.ts";
import { tinyTestConfig, writeRandomModel } from "../lib/model/random_model.ts";
import { ModelFormatError } from "../lib/model/safetensors/format.ts";
import {
  type LazyTensorToWrite,
  type TensorToWrite,
  writeSafetensors,
  writeSafetensorsTo,
} from "../lib/model/safetensors/write.ts";
import { readWeightsToHost, saveWeights } from "../lib/model/weights.ts";
import { type CheckpointWriter, saveCheckpoint, type TrainState } from "../lib/train/checkpoint.ts";
import { meanNll } from "../lib/train/losses.ts";
import { AdamW, trainableParams } from "../lib/train/optimizer.ts";
import { reusedPass, trainStep } from "../lib/train/step.ts";
import { randn } from "./helpers.ts";

const v = randn(37, 2);
const TENSORS: TensorToWrite[] = [
  { name: "w", dtype: "F32", shape: [5, 7], data: randn(35, 1) },
  { name: "b16", dtype: "BF16", shape: [37], data: v },
  { name: "h16", dtype: "F16", shape: [37], data: v },
  { name: "empty", dtype: "F32", shape: [0, 4], data: new Float32Array(0) },
  { name: "raw", dtype: "BF16", shape: [2], data: new Uint16Array([0x3f80, 0x4000]) },
];

/** The same tensors with data produced on demand; `log` records each production. */
function lazy(log: string[]): LazyTensorToWrite[] {
  return TENSORS.map((t) => ({
    ...t,
    data: () => {
      log.push(`make ${t.name}`);
      return Promise.resolve(t.data);
    },
  }));
}

/** A sink taking at most 7 bytes per write (like a partial file write), logging each write. */
function choppySink(log: string[]) {
  const chunks: Uint8Array[] = [];
  return {
    chunks,
    write(c: Uint8Array): Promise<number> {
      const n = Math.min(7, c.length);
      chunks.push(c.slice(0, n));
      log.push(`write ${n}`);
      return Promise.resolve(n);
    },
  };
}

const concat = (parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) out.set(p, (o += p.length) - p.length);
  return out;
};

async function rejectsNaming(p: Promise<unknown>, ...parts: string[]): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof ModelFormatError, `expected ModelFormatError, got ${e}`);
    for (const part of parts) {
      assert.ok(e.message.includes(part), `message ${JSON.stringify(e.message)} lacks ${part}`);
    }
    return true;
  });
}

Deno.test("writeSafetensorsTo: same bytes as writeSafetensors, into a file, a partial sink or a stream", async () => {
  const dir = await Deno.makeTempDir({ prefix: "st_stream_" });
  try {
    const meta = { format: "pt", step: "3" };
    await writeSafetensors(join(dir, "path.safetensors"), TENSORS, meta);
    const want = await Deno.readFile(join(dir, "path.safetensors"));

    // Into an open file, lazy tensors.
    {
      using f = await Deno.open(join(dir, "file.safetensors"), { write: true, createNew: true });
      const n = await writeSafetensorsTo(f, lazy([]), meta, "file.safetensors");
      assert.equal(n, want.length);
    }
    assert.deepEqual(await Deno.readFile(join(dir, "file.safetensors")), want);

    // A sink that accepts a few bytes per call: every byte still arrives, in order.
    const log: string[] = [];
    const sink = choppySink(log);
    await writeSafetensorsTo(sink, lazy(log), meta);
    assert.deepEqual(concat(sink.chunks), want);

    // A WritableStream writer (write() takes whole chunks and returns nothing).
    const parts: Uint8Array[] = [];
    const w = new WritableStream<Uint8Array>({ write: (c) => void parts.push(c.slice()) })
      .getWriter();
    await writeSafetensorsTo(w, [...lazy([])].reverse(), meta);
    await w.close();
    assert.deepEqual(concat(parts), want);

    // The lazy and eager paths agree on what writeSafetensors(path) takes, too.
    await writeSafetensors(join(dir, "lazy.safetensors"), lazy([]), meta);
    assert.deepEqual(await Deno.readFile(join(dir, "lazy.safetensors")), want);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeSafetensorsTo: lazy tensors are made one at a time, in file order, after the bytes before them", async () => {
  const log: string[] = [];
  const sink = choppySink(log);
  await writeSafetensorsTo(sink, lazy(log), undefined);
  const made = log.filter((l) => l.startsWith("make")).map((l) => l.slice(5));
  assert.deepEqual(made, ["b16", "empty", "h16", "raw", "w"]); // sorted, each exactly once
  // Bytes written before each tensor is made: the header plus all earlier tensors, no more.
  const headerLen = 8 + Number(new DataView(concat(sink.chunks).buffer).getBigUint64(0, true));
  const size: Record<string, number> = { b16: 74, empty: 0, h16: 74, raw: 4, w: 140 };
  let expected = headerLen, written = 0;
  for (const l of log) {
    if (l.startsWith("write")) written += Number(l.slice(6));
    else {
      assert.equal(written, expected, `bytes written before ${l}`);
      expected += size[l.slice(5)];
    }
  }
  assert.equal(written, expected);
});

Deno.test("writeSafetensorsTo: bad input is named; plan errors come before any byte", async () => {
  const log: string[] = [];
  const sink = choppySink(log);
  const bad = (t: Partial<LazyTensorToWrite>) => [{ ...lazy(log)[0], ...t }] as LazyTensorToWrite[];
  await rejectsNaming(
    writeSafetensorsTo(sink, [...lazy(log), lazy(log)[2]], undefined, "dup.st"),
    "dup.st",
    '"h16"',
    "twice",
  );
  await rejectsNaming(
    writeSafetensorsTo(sink, bad({ shape: [-1] }), undefined, "neg.st"),
    "neg.st",
  );
  await rejectsNaming(
    writeSafetensorsTo(sink, [{ ...TENSORS[0], shape: [3] }], undefined, "eager.st"),
    "eager.st",
    '"w"',
    "35 values",
  );
  assert.deepEqual(log, [], "nothing written or made for input refused up front");
  // Lazy data is checked when it is made: the wrong length is named with the destination.
  await rejectsNaming(
    writeSafetensorsTo(
      sink,
      bad({ data: () => new Float32Array(3) }),
      undefined,
      "late.st",
    ),
    "late.st",
    '"w"',
    "3 values",
  );
  await rejectsNaming(
    writeSafetensorsTo(sink, bad({ data: () => new Uint16Array(35) }), undefined, "u16.st"),
    "u16.st",
    "16-bit data",
  );
});

Deno.test("saveCheckpoint streams into a bundle with the bytes of the path-based writers", async () => {
  const gpu = await getGpu();
  const dir = await Deno.makeTempDir({ prefix: "ckpt_stream_" });
  try {
    for (const tied of [false, true]) {
      const src = join(dir, `model-${tied}`);
      const config = tinyTestConfig({ tieWordEmbeddings: tied });
      await writeRandomModel(src, config, { dtype: "BF16", seed: 5 });
      await Deno.writeTextFile(join(src, "tokenizer.json"), '{"stand-in": true}\n');
      const model = await LlamaModel.load(gpu, src);
      const opt = new AdamW(gpu, trainableParams(model));
      const B = 1, S = 5, V = config.vocabSize;
      const pass = new ForwardPass(model, B, S);
      const tokens = new Uint32Array(S).map((_, i) => (i * 7 + 3) % V);
      const targets = new Uint32Array(S).map((_, i) => (i * 5 + 1) % V);
      const mask = new Float32Array(S).fill(1);
      await trainStep(
        reusedPass(pass),
        opt,
        [{ tokens, targets, mask }],
        1e-2,
        (lp) => meanNll(lp, mask, B, S),
      );
      const state: TrainState = {
        step: 1,
        dataPosition: 1,
        rng: { seed: 1 },
        lrSchedule: { kind: "constant", lr: 1e-2 },
      };

      // Streamed through a bundle writer, the way a run's ctx.writeFileWith does it.
      const bundleDir = join(dir, `bundle-${tied}`);
      const bundle = new BundleWriter(bundleDir, "t", "0123456789abcdef");
      const writer: CheckpointWriter = {
        writeFileWith: (rel, w) => bundle.writeFileWith(rel, { deterministic: true }, w),
      };
      const rel = await saveCheckpoint(writer, "checkpoints", {
        gpu,
        config: model.config,
        weights: model.weights,
        optimizer: opt,
        state,
        tokenizerDir: src,
      });
      const ck = join(bundleDir, rel);

      // The same files made the pre-streaming way: host copies through the path writers.
      const ref = join(dir, `ref-${tied}`);
      await saveWeights(
        ref,
        model.config,
        await readWeightsToHost(gpu, model.weights, model.config),
        "F32",
      );
      const tensors: TensorToWrite[] = [];
      for (const [name, s] of await opt.readState()) {
        tensors.push({ name: `m/${name}`, dtype: "F32", shape: s.shape, data: s.m });
        tensors.push({ name: `v/${name}`, dtype: "F32", shape: s.shape, data: s.v });
      }
      await writeSafetensors(join(ref, "optimizer.safetensors"), tensors, { step: "1" });
      await Deno.writeTextFile(join(ref, "state.json"), JSON.stringify(state, null, 2) + "\n");
      await Deno.copyFile(join(src, "tokenizer.json"), join(ref, "tokenizer.json"));

      const names = [...Deno.readDirSync(ref)].map((e) => e.name).sort();
      assert.deepEqual(names, [
        "config.json",
        "model.safetensors",
        "optimizer.safetensors",
        "state.json",
        "tokenizer.json",
      ]);
      let sums = "";
      for (const n of names) {
        assert.deepEqual(
          await Deno.readFile(join(ck, n)),
          await Deno.readFile(join(ref, n)),
          `${n} (tied ${tied})`,
        );
        sums += `${(await hashFile(join(ref, n))).sha256}  ${n}\n`;
      }
      assert.equal(await Deno.readTextFile(join(ck, "SHA256SUMS")), sums);
      // Every file is registered with the bundle, SHA256SUMS included; nothing else on disk.
      assert.deepEqual(
        [...bundle.files.keys()].sort(),
        [...names, "SHA256SUMS"].sort().map((n) => `${rel}/${n}`),
      );
      assert.deepEqual(
        [...Deno.readDirSync(ck)].map((e) => e.name).sort(),
        [...names, "SHA256SUMS"].sort(),
      );
      opt.destroy();
      pass.destroy();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
