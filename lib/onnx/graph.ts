/**
 * A small builder for ONNX graphs: named values, nodes with typed attributes, constant and
 * weight initializers, graph inputs and outputs with symbolic dimensions. It produces plain
 * objects in the shape of the ONNX protobuf messages (`onnx.IGraphProto`); encoding them is
 * onnx_proto.ts's job, so building a graph needs no protobuf code at all.
 *
 * @module
 */
import type { onnx } from "onnx-proto";

/** ONNX element types used here (TensorProto.DataType). */
export const ElemType = { FLOAT: 1, INT64: 7, BOOL: 9, FLOAT16: 10 } as const;
/** One of {@link ElemType}'s values. */
export type ElemType = (typeof ElemType)[keyof typeof ElemType];

/** AttributeProto.AttributeType values used here. */
const AttrType = { FLOAT: 1, INT: 2, INTS: 7 } as const;

/** A dimension of a graph input or output: a fixed size or a symbolic name ("batch_size"). */
export type Dim = number | string;

/** An attribute value: an integer, a float (`{ f }`), or a list of integers. */
export type AttrValue = number | { f: number } | number[];

function attribute(name: string, v: AttrValue): onnx.IAttributeProto {
  if (Array.isArray(v)) return { name, type: AttrType.INTS, ints: v };
  if (typeof v === "object") return { name, type: AttrType.FLOAT, f: v.f };
  if (!Number.isSafeInteger(v)) throw new Error(`onnx attribute ${name}: ${v} is not an integer`);
  return { name, type: AttrType.INT, i: v };
}

function valueInfo(name: string, elemType: ElemType, dims: Dim[]): onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: {
          dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })),
        },
      },
    },
  };
}

/** Builds one ONNX graph; every value name is unique and every node is named after its output. */
export class GraphBuilder {
  readonly nodes: onnx.INodeProto[] = [];
  readonly initializers: onnx.ITensorProto[] = [];
  readonly inputs: onnx.IValueInfoProto[] = [];
  readonly outputs: onnx.IValueInfoProto[] = [];
  #names = new Set<string>();
  #constants = new Map<string, string>();
  #counter = 0;

  /** Reserves `name` (throws when it is already taken: ONNX values are single-assignment). */
  claim(name: string): string {
    if (this.#names.has(name)) throw new Error(`onnx graph: value ${name} defined twice`);
    this.#names.add(name);
    return name;
  }

  /** A fresh value name from a hint ("layers.0.q" stays as is while it is free). */
  fresh(hint: string): string {
    let name = hint;
    while (this.#names.has(name)) name = `${hint}_${++this.#counter}`;
    return this.claim(name);
  }

  /** Declares a graph input. */
  input(name: string, elemType: ElemType, dims: Dim[]): string {
    this.inputs.push(valueInfo(this.claim(name), elemType, dims));
    return name;
  }

  /** Declares `value` (already produced by a node) as a graph output with that shape. */
  output(value: string, elemType: ElemType, dims: Dim[]): void {
    if (!this.#names.has(value)) throw new Error(`onnx graph: output ${value} is never produced`);
    this.outputs.push(valueInfo(value, elemType, dims));
  }

  /**
   * Adds a node; returns its output names (`outputs` gives the count or the exact names; the
   * default is one output named after `hint`, else after the op).
   */
  nodeN(
    op: string,
    inputs: string[],
    opts: { attrs?: Record<string, AttrValue>; outputs?: number | string[]; hint?: string } = {},
  ): string[] {
    for (const i of inputs) {
      if (i !== "" && !this.#names.has(i)) throw new Error(`onnx graph: ${op} reads unknown ${i}`);
    }
    const hint = opts.hint ?? op;
    const given = opts.outputs;
    const outs = Array.isArray(given) ? given.map((n) => this.claim(n)) : Array.from(
      { length: given ?? 1 },
      (_, k) => this.fresh((given ?? 1) > 1 ? `${hint}.${k}` : hint),
    );
    const attrs = Object.entries(opts.attrs ?? {}).map(([k, v]) => attribute(k, v));
    this.nodes.push({
      name: `${op}:${outs[0]}`,
      opType: op,
      input: inputs,
      output: outs,
      attribute: attrs,
    });
    return outs;
  }

  /** Adds a node with one output; returns its name. */
  node(
    op: string,
    inputs: string[],
    attrs: Record<string, AttrValue> = {},
    hint?: string,
  ): string {
    return this.nodeN(op, inputs, { attrs, hint })[0];
  }

  /** Adds an initializer (a weight) under `name`. */
  initializer(tensor: onnx.ITensorProto & { name: string }): string {
    this.claim(tensor.name);
    this.initializers.push(tensor);
    return tensor.name;
  }

  /** An int64 constant (1-D, or a scalar with `scalar`), shared between uses of equal value. */
  int64(values: number[], scalar = false): string {
    const key = `i64:${scalar ? "s" : "v"}:${values.join(",")}`;
    const known = this.#constants.get(key);
    if (known) return known;
    if (scalar && values.length !== 1) throw new Error("onnx graph: a scalar has one value");
    const name = this.fresh(`const.${scalar ? "" : "["}${values.join("_")}${scalar ? "" : "]"}`);
    this.initializers.push({
      name,
      dataType: ElemType.INT64,
      dims: scalar ? [] : [values.length],
      int64Data: values,
    });
    this.#constants.set(key, name);
    return name;
  }

  /** A float32 scalar constant, shared between uses of equal value. */
  float(value: number): string {
    const key = `f32:${Object.is(value, -0) ? "-0" : value}`;
    const known = this.#constants.get(key);
    if (known) return known;
    const name = this.fresh(`const.${value}`);
    this.initializers.push({ name, dataType: ElemType.FLOAT, dims: [], floatData: [value] });
    this.#constants.set(key, name);
    return name;
  }

  /** The graph message. */
  toGraph(name: string, docString = ""): onnx.IGraphProto {
    return {
      name,
      docString,
      node: this.nodes,
      initializer: this.initializers,
      input: this.inputs,
      output: this.outputs,
    };
  }
}
