// The marker that makes an encrypted ONNX graph explain itself. The stripped graph (model.ts) holds no
// weights; loaded without ctensors (plain transformers.js, onnxruntime), it would fail deep inside
// onnxruntime with "raw_data size (0 bytes) does not match expected size". So splitOnnx adds one node of
// an operator that no runtime has, named after what to do, and joinOnnx takes it out again (the original
// file comes back byte for byte). onnxruntime resolves operators before it loads initializers, so the
// first error is:
//   Fatal error: ctensors:this model is encrypted: install the ctensors hook (ctensors/transformers) to load it (-1) is not a registered function/op
// The node's output is used by nothing; the marker domain is declared in the model's opset imports.

import { CryptoTensorsError } from "../errors.js";
import { encodeVarint, lenField, parseMessage, serializeMessage, stringValue, WIRE_LEN, WIRE_VARINT, type WireField } from "./wire.js";

/** The operator domain of the marker node (never used by a real model: splitOnnx refuses a model that declares it). */
export const ENCRYPTED_MARKER_DOMAIN = "ctensors";
/** The marker node's operator name: the text onnxruntime's error shows. */
export const ENCRYPTED_MARKER_OP = "this model is encrypted: install the ctensors hook (ctensors/transformers) to load it ";

// Field numbers of the ONNX IR.
const MODEL_OPSET_IMPORT = 8;
const OPSET_DOMAIN = 1;
const OPSET_VERSION = 2;
const GRAPH_NODE = 1;
const NODE_OUTPUT = 2;
const NODE_NAME = 3;
const NODE_OP_TYPE = 4;
const NODE_DOMAIN = 7;

const utf8 = (s: string) => new TextEncoder().encode(s);

function varintField(no: number, value: number): WireField {
  const tag = encodeVarint(no * 8 + WIRE_VARINT);
  const v = encodeVarint(value);
  const raw = new Uint8Array(tag.length + v.length);
  raw.set(tag, 0);
  raw.set(v, tag.length);
  return { no, wire: WIRE_VARINT, raw, value: v };
}

const MARKER_NODE = lenField(
  GRAPH_NODE,
  serializeMessage([
    lenField(NODE_OUTPUT, utf8("ctensors_encrypted_model")),
    lenField(NODE_NAME, utf8("ctensors_encrypted_model")),
    lenField(NODE_OP_TYPE, utf8(ENCRYPTED_MARKER_OP)),
    lenField(NODE_DOMAIN, utf8(ENCRYPTED_MARKER_DOMAIN)),
  ]),
);
const MARKER_OPSET = lenField(
  MODEL_OPSET_IMPORT,
  serializeMessage([lenField(OPSET_DOMAIN, utf8(ENCRYPTED_MARKER_DOMAIN)), varintField(OPSET_VERSION, 1)]),
);

const sameField = (a: WireField, b: WireField) => a.raw.length === b.raw.length && a.raw.every((x, i) => x === b.raw[i]);

function declaresMarkerDomain(f: WireField): boolean {
  if (f.no !== MODEL_OPSET_IMPORT || f.wire !== WIRE_LEN) return false;
  return parseMessage(f.value).some((o) => o.no === OPSET_DOMAIN && o.wire === WIRE_LEN && stringValue(o) === ENCRYPTED_MARKER_DOMAIN);
}

/** The model and graph fields with the marker: the node first among the graph's nodes, the opset import last. @throws ERR_CT_UNSUPPORTED */
export function addEncryptedMarker(
  modelFields: readonly WireField[],
  graph: readonly WireField[],
): { modelFields: WireField[]; graph: WireField[] } {
  if (modelFields.some(declaresMarkerDomain))
    throw new CryptoTensorsError("ERR_CT_UNSUPPORTED", `the ONNX model already uses the operator domain "${ENCRYPTED_MARKER_DOMAIN}"`);
  const first = graph.findIndex((f) => f.no === GRAPH_NODE);
  const g = [...graph];
  g.splice(Math.max(first, 0), 0, MARKER_NODE);
  return { modelFields: [...modelFields, MARKER_OPSET], graph: g };
}

/** The fields without the marker (graphs encrypted before the marker existed have none). */
export function removeEncryptedMarker(
  modelFields: readonly WireField[],
  graph: readonly WireField[],
): { modelFields: WireField[]; graph: WireField[] } {
  return {
    modelFields: modelFields.filter((f) => !sameField(f, MARKER_OPSET)),
    graph: graph.filter((f) => !sameField(f, MARKER_NODE)),
  };
}
