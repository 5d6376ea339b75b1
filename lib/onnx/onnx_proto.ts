/**
 * The ONNX protobuf messages, from the `onnx-proto` package (protobufjs code generated from
 * ONNX's own onnx.proto): encoding a model and decoding one back. Nothing here writes protobuf
 * bytes by hand.
 *
 * Only modules reached by dynamic import() load this (the exporter, the tests), so the engine's
 * module graph does not carry protobufjs.
 *
 * @module
 */
import * as onnxProtoModule from "onnx-proto";
import type { onnx as OnnxTypes } from "onnx-proto";

type OnnxNamespace = typeof OnnxTypes;

// A CommonJS package: Deno exposes its module.exports as the default export.
const mod = onnxProtoModule as unknown as {
  onnx?: OnnxNamespace;
  default?: { onnx?: OnnxNamespace };
};
const onnx: OnnxNamespace = (() => {
  const ns = mod.onnx ?? mod.default?.onnx;
  if (!ns) throw new Error("onnx-proto: the package did not provide the onnx namespace");
  return ns;
})();

/** An ONNX model message (plain object form). */
export type ModelProto = OnnxTypes.IModelProto;

/** A tensor of a decoded model (the fields read back here; int64s as numbers). */
export interface DecodedTensor {
  name: string;
  dims: number[];
  dataType: number;
  rawData?: Uint8Array;
  dataLocation?: number;
  externalData: { key: string; value: string }[];
}

/** A graph input or output of a decoded model. */
export interface DecodedValueInfo {
  name: string;
  type: {
    tensorType: { elemType: number; shape: { dim: { dimValue?: number; dimParam?: string }[] } };
  };
}

/** A decoded ONNX model as a plain object (int64s as numbers, repeated fields always arrays). */
export interface DecodedModel {
  irVersion: number;
  opsetImport: { domain: string; version: number }[];
  producerName: string;
  metadataProps: { key: string; value: string }[];
  graph: {
    name: string;
    node: { name: string; opType: string; input: string[]; output: string[] }[];
    initializer: DecodedTensor[];
    input: DecodedValueInfo[];
    output: DecodedValueInfo[];
  };
}

/** Checks `model` against the schema and encodes it. */
export function encodeModel(model: ModelProto): Uint8Array {
  const problem = onnx.ModelProto.verify(model);
  if (problem) throw new Error(`onnx export: the model message is invalid: ${problem}`);
  return onnx.ModelProto.encode(model).finish();
}

/** Decodes an ONNX file's bytes into a plain object (see {@link DecodedModel}). */
export function decodeModel(bytes: Uint8Array): DecodedModel {
  const msg = onnx.ModelProto.decode(bytes);
  return onnx.ModelProto.toObject(msg, { longs: Number, arrays: true }) as unknown as DecodedModel;
}
