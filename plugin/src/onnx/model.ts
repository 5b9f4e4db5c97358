// ONNX models as CryptoTensors: the weights (a graph's initializers) are taken out of the ONNX file and
// its external-data files and become the tensors of a CryptoTensors container beside the graph; the
// graph keeps everything else. Putting them back gives the original files byte for byte.
//
// Layout for `onnx/model.onnx` (docs/transformersjs.md):
//   onnx/model.onnx                the graph; every initializer that held raw_data keeps an EMPTY raw_data
//                                  field, initializers stored as external data keep their references; one
//                                  marker node is added (encrypted-marker.ts) so that loading the graph
//                                  without ctensors fails with "this model is encrypted: install the ctensors hook"
//   onnx/model.onnx.cryptotensors  one tensor per initializer (its bytes, dtype and shape), encrypted and
//                                  signed; `__metadata__["ctensors.onnx"]` (signed with the header) holds
//                                  the manifest: SHA-256 of the stripped graph, which initializers were
//                                  inline, and the external-data files to rebuild (name and size).
// Pure code (no Node APIs): used by the CLI and by the runtime hook in Node and in browsers.

import { CryptoTensorsError } from "../errors.js";
import type { Dtype } from "../format/dtype.js";
import { tensorByteLength } from "../format/dtype.js";
import {
  encodeVarint,
  lenField,
  parseMessage,
  repeatedVarints,
  serializeMessage,
  stringValue,
  varintValue,
  WIRE_LEN,
  type WireField,
} from "./wire.js";
import { quote } from "../format/printable.js";
import { addEncryptedMarker, removeEncryptedMarker } from "./encrypted-marker.js";

// Field numbers of the ONNX IR (onnx.proto3, IR version ≥ 3).
const MODEL_GRAPH = 7;
const GRAPH_INITIALIZER = 5;
const TENSOR_DIMS = 1;
const TENSOR_DATA_TYPE = 2;
const TENSOR_NAME = 8;
const TENSOR_RAW_DATA = 9;
const TENSOR_EXTERNAL_DATA = 13;
const TENSOR_DATA_LOCATION = 14;
const ENTRY_KEY = 1;
const ENTRY_VALUE = 2;
const DATA_LOCATION_EXTERNAL = 1;

/** The metadata key of the manifest in the container's `__metadata__`. */
export const ONNX_MANIFEST_KEY = "ctensors.onnx";
/** The container beside `X.onnx`. */
export const ONNX_CONTAINER_SUFFIX = ".cryptotensors";

/** TensorProto.DataType → safetensors dtype, where one exists with the same byte layout. */
const ONNX_DTYPES: Record<number, Dtype> = {
  1: "F32",
  2: "U8",
  3: "I8",
  4: "U16",
  5: "I16",
  6: "I32",
  7: "I64",
  9: "BOOL",
  10: "F16",
  11: "F64",
  12: "U32",
  13: "U64",
  16: "BF16",
  17: "F8_E4M3",
  19: "F8_E5M2",
};

export interface OnnxWeight {
  name: string;
  dtype: Dtype;
  shape: number[];
  data: Uint8Array;
}

export interface OnnxManifest {
  version: 1;
  /** Base name of the graph file. */
  graph: string;
  /** Standard base64 SHA-256 of the stripped graph file. */
  graphSha256: string;
  /** Initializers whose raw_data was moved out, in graph order. */
  inline: string[];
  /** External-data files to rebuild (relative to the graph's folder) with their sizes. */
  external: { file: string; bytes: number }[];
}

interface Initializer {
  fields: WireField[];
  name: string;
  dataType: number;
  dims: number[];
  external: Map<string, string> | undefined;
}

function bad(message: string): CryptoTensorsError {
  return new CryptoTensorsError("ERR_CT_FORMAT", message);
}

function readInitializer(payload: Uint8Array): Initializer {
  const fields = parseMessage(payload);
  let name: string | undefined;
  let dataType = 0;
  let location = 0;
  const entries: WireField[] = [];
  for (const f of fields) {
    if (f.no === TENSOR_NAME) name = stringValue(f);
    else if (f.no === TENSOR_DATA_TYPE) dataType = varintValue(f);
    else if (f.no === TENSOR_DATA_LOCATION) location = varintValue(f);
    else if (f.no === TENSOR_EXTERNAL_DATA && f.wire === WIRE_LEN) entries.push(f);
  }
  if (name === undefined) throw bad("an ONNX initializer has no name");
  let external: Map<string, string> | undefined;
  if (location === DATA_LOCATION_EXTERNAL) {
    external = new Map();
    for (const e of entries) {
      let k: string | undefined;
      let v: string | undefined;
      for (const ef of parseMessage(e.value)) {
        if (ef.no === ENTRY_KEY) k = stringValue(ef);
        else if (ef.no === ENTRY_VALUE) v = stringValue(ef);
      }
      if (k !== undefined) external.set(k, v ?? "");
    }
  }
  return { fields, name, dataType, dims: repeatedVarints(fields, TENSOR_DIMS), external };
}

/** An external-data location must stay inside the graph's folder. */
export function checkLocation(location: string): string {
  if (
    !location ||
    location.startsWith("/") ||
    location.includes("\\") ||
    location.split("/").some((p) => p === ".." || p === "." || p === "")
  ) {
    throw bad(`external data location ${quote(location)} is not a plain relative path`);
  }
  return location;
}

function externalRange(init: Initializer, fileBytes: number | undefined): { file: string; offset: number; length: number } {
  const ext = init.external!;
  const file = checkLocation(ext.get("location") ?? "");
  const num = (k: string, dflt: number | undefined): number => {
    const s = ext.get(k);
    if (s === undefined) {
      if (dflt === undefined) throw bad(`initializer ${quote(init.name)}: external data has no ${k}`);
      return dflt;
    }
    if (!/^\d+$/.test(s) || !Number.isSafeInteger(Number(s)))
      throw bad(`initializer ${quote(init.name)}: bad external data ${k} ${quote(s)}`);
    return Number(s);
  };
  const offset = num("offset", 0);
  const length = num("length", fileBytes === undefined ? undefined : fileBytes - offset);
  return { file, offset, length };
}

function weightOf(init: Initializer, data: Uint8Array): OnnxWeight {
  const dtype = ONNX_DTYPES[init.dataType];
  if (dtype) {
    const n = tensorByteLength(dtype, init.dims);
    if (n !== undefined && Number(n) === data.length) return { name: init.name, dtype, shape: [...init.dims], data };
  }
  // No safetensors dtype with this layout (int4, strings…) or an unexpected size: keep the bytes as U8.
  return { name: init.name, dtype: "U8", shape: [data.length], data };
}

function graphFields(model: Uint8Array): { modelFields: WireField[]; graphIndex: number; graph: WireField[] } {
  const modelFields = parseMessage(model);
  const graphIndex = modelFields.findIndex((f) => f.no === MODEL_GRAPH && f.wire === WIRE_LEN);
  if (graphIndex < 0) throw bad("the ONNX file has no graph");
  return { modelFields, graphIndex, graph: parseMessage(modelFields[graphIndex]!.value) };
}

function withGraph(modelFields: WireField[], graphIndex: number, graph: WireField[]): Uint8Array {
  const out = [...modelFields];
  out[graphIndex] = lenField(MODEL_GRAPH, serializeMessage(graph));
  return serializeMessage(out);
}

export interface SplitResult {
  /** The graph file without inline weights. */
  graph: Uint8Array;
  weights: OnnxWeight[];
  inline: string[];
  external: { file: string; bytes: number }[];
  /** External-data files that were read (relative to the graph's folder). */
  consumed: string[];
}

/**
 * Takes the weights out of an ONNX model. `readExternal(location)` returns an external-data file's
 * bytes. Bytes of an external file that no initializer covers must be zero (alignment padding), so that
 * the file can be rebuilt exactly.
 * @throws ERR_CT_FORMAT, ERR_CT_UNSUPPORTED
 */
export function splitOnnx(model: Uint8Array, readExternal: (location: string) => Uint8Array): SplitResult {
  const { modelFields, graphIndex, graph } = graphFields(model);
  const weights: OnnxWeight[] = [];
  const inline: string[] = [];
  const names = new Set<string>();
  const files = new Map<string, { data: Uint8Array; covered: Uint8Array }>();
  const newGraph = graph.map((gf) => {
    if (gf.no !== GRAPH_INITIALIZER || gf.wire !== WIRE_LEN) return gf;
    const init = readInitializer(gf.value);
    if (names.has(init.name)) throw bad(`two initializers are named ${quote(init.name)}`);
    if (init.external) {
      const location = checkLocation(init.external.get("location") ?? "");
      let file = files.get(location);
      if (!file) {
        const data = readExternal(location);
        file = { data, covered: new Uint8Array(data.length) };
        files.set(location, file);
      }
      const r = externalRange(init, file.data.length);
      if (r.offset + r.length > file.data.length)
        throw bad(`initializer ${quote(init.name)}: external data range is beyond the end of ${location}`);
      file.covered.fill(1, r.offset, r.offset + r.length);
      names.add(init.name);
      weights.push(weightOf(init, file.data.subarray(r.offset, r.offset + r.length)));
      return gf;
    }
    const raw = init.fields.filter((f) => f.no === TENSOR_RAW_DATA);
    if (raw.length !== 1 || raw[0]!.wire !== WIRE_LEN || raw[0]!.value.length === 0) return gf; // typed fields or empty: left in the graph
    names.add(init.name);
    inline.push(init.name);
    weights.push(weightOf(init, raw[0]!.value));
    const stripped = init.fields.map((f) => (f.no === TENSOR_RAW_DATA ? lenField(TENSOR_RAW_DATA, new Uint8Array(0)) : f));
    return lenField(GRAPH_INITIALIZER, serializeMessage(stripped));
  });
  for (const [location, { data, covered }] of files) {
    for (let i = 0; i < data.length; i++) {
      if (!covered[i] && data[i] !== 0) {
        throw new CryptoTensorsError(
          "ERR_CT_UNSUPPORTED",
          `${location}: byte ${i} belongs to no initializer and is not zero padding; cannot rebuild this file exactly`,
        );
      }
    }
  }
  const marked = addEncryptedMarker(modelFields, newGraph);
  return {
    graph: withGraph(marked.modelFields, graphIndex, marked.graph),
    weights,
    inline,
    external: [...files].map(([file, { data }]) => ({ file, bytes: data.length })),
    consumed: [...files.keys()],
  };
}

/** Where one weight goes in the rebuilt files: `length` bytes at `offset` of `file` (the graph's base name or an external-data location). */
export interface WeightPlacement {
  name: string;
  file: string;
  offset: number;
  length: number;
}

/** The rebuilt files with their weights' bytes still zero, and where each weight goes. */
export interface OnnxLayout {
  /** File name → its bytes: the graph (by its base name, `manifest.graph`) and each external-data file. */
  files: Map<string, Uint8Array>;
  placements: WeightPlacement[];
}

/** A piece of a message being rebuilt: bytes, or room for a weight's bytes. */
type Piece = Uint8Array | { weight: string; length: number };

const pieceLength = (ps: readonly Piece[]) => ps.reduce((n, p) => n + (p instanceof Uint8Array ? p.length : p.length), 0);

function lenPieces(no: number, payload: readonly Piece[]): Piece[] {
  const tag = encodeVarint(no * 8 + WIRE_LEN);
  const len = encodeVarint(pieceLength(payload));
  const head = new Uint8Array(tag.length + len.length);
  head.set(tag, 0);
  head.set(len, tag.length);
  return [head, ...payload];
}

/**
 * Lays out the original ONNX file and its external-data files for the weights to be written straight
 * into them (decrypted in place by the caller): returns the files, zero where weights go, and each
 * weight's place. `sizeOf(name)` is a weight's byte length (the container's), undefined when the
 * container has no such weight. The graph must have been checked against the manifest's digest by the caller.
 * @throws ERR_CT_FORMAT when graph, manifest and sizes disagree; ERR_CT_UNSUPPORTED for files no buffer can hold
 */
export function layoutOnnx(graph: Uint8Array, manifest: OnnxManifest, sizeOf: (name: string) => number | undefined): OnnxLayout {
  const parsed = graphFields(graph);
  const { modelFields, graph: fields } = removeEncryptedMarker(parsed.modelFields, parsed.graph);
  const graphIndex = modelFields.findIndex((f) => f.no === MODEL_GRAPH && f.wire === WIRE_LEN);
  const inline = new Set(manifest.inline);
  const files = new Map(manifest.external.map((e) => [checkLocation(e.file), allocateExternal(e.file, e.bytes)]));
  const placements: WeightPlacement[] = [];
  const size = (name: string): number => {
    const n = sizeOf(name);
    if (n === undefined) throw bad(`the container has no weight ${quote(name)} for the graph's initializer`);
    return n;
  };
  const seen = new Set<string>();
  const graphPieces: Piece[] = [];
  for (const gf of fields) {
    if (gf.no !== GRAPH_INITIALIZER || gf.wire !== WIRE_LEN) {
      graphPieces.push(gf.raw);
      continue;
    }
    const init = readInitializer(gf.value);
    if (init.external) {
      const location = checkLocation(init.external.get("location") ?? "");
      const file = files.get(location);
      if (!file) throw bad(`initializer ${quote(init.name)} refers to ${location}, which the manifest does not list`);
      const r = externalRange(init, file.length);
      if (size(init.name) !== r.length || r.offset + r.length > file.length)
        throw bad(`initializer ${quote(init.name)}: size does not match its external data range`);
      placements.push({ name: init.name, file: location, offset: r.offset, length: r.length });
      graphPieces.push(gf.raw);
      continue;
    }
    if (!inline.has(init.name)) {
      graphPieces.push(gf.raw);
      continue;
    }
    if (seen.has(init.name)) throw bad(`two initializers are named ${quote(init.name)}`);
    seen.add(init.name);
    const length = size(init.name);
    const initPieces: Piece[] = [];
    for (const f of init.fields) {
      if (f.no !== TENSOR_RAW_DATA) initPieces.push(f.raw);
      else if (f.value.length !== 0) throw bad(`initializer ${quote(init.name)} still holds data in the stripped graph`);
      else initPieces.push(...lenPieces(TENSOR_RAW_DATA, [{ weight: init.name, length }]));
    }
    graphPieces.push(...lenPieces(GRAPH_INITIALIZER, initPieces));
  }
  const missing = manifest.inline.filter((n) => !seen.has(n));
  if (missing.length) throw bad(`the graph has no initializer ${quote(missing[0])} listed in the manifest`);
  const modelPieces: Piece[] = [];
  modelFields.forEach((f, i) => modelPieces.push(...(i === graphIndex ? lenPieces(MODEL_GRAPH, graphPieces) : [f.raw])));
  const model = allocateExternal(manifest.graph, pieceLength(modelPieces));
  let pos = 0;
  for (const p of modelPieces) {
    if (p instanceof Uint8Array) model.set(p, pos);
    else placements.push({ name: p.weight, file: manifest.graph, offset: pos, length: p.length });
    pos += p.length;
  }
  if (files.has(manifest.graph)) throw bad(`external data file ${quote(manifest.graph)} has the graph's name`);
  files.set(manifest.graph, model);
  return { files, placements };
}

/**
 * Puts the weights back: returns the original ONNX file and its external-data files.
 * `weight(name)` returns an initializer's bytes (decrypted and authenticated). The graph must have
 * been checked against the manifest's digest by the caller.
 * @throws ERR_CT_FORMAT when graph and manifest disagree
 */
export async function joinOnnx(
  graph: Uint8Array,
  manifest: OnnxManifest,
  weight: (name: string) => Promise<Uint8Array>,
): Promise<{ model: Uint8Array; external: Map<string, Uint8Array> }> {
  const needed = neededWeights(graph, manifest);
  const data = new Map<string, Uint8Array>();
  for (const name of needed) if (!data.has(name)) data.set(name, await weight(name));
  const { files, placements } = layoutOnnx(graph, manifest, (name) => data.get(name)?.length);
  for (const p of placements) files.get(p.file)!.set(data.get(p.name)!, p.offset);
  const model = files.get(manifest.graph)!;
  files.delete(manifest.graph);
  return { model, external: files };
}

/** The names of the weights a stripped graph takes back, in graph order. */
function neededWeights(graph: Uint8Array, manifest: OnnxManifest): string[] {
  const inline = new Set(manifest.inline);
  const out: string[] = [];
  for (const gf of graphFields(graph).graph) {
    if (gf.no !== GRAPH_INITIALIZER || gf.wire !== WIRE_LEN) continue;
    const init = readInitializer(gf.value);
    if (init.external || inline.has(init.name)) out.push(init.name);
  }
  return out;
}

/** The buffer an external-data file is rebuilt in; a size no buffer can hold is a coded refusal, not a RangeError. */
function allocateExternal(file: string, bytes: number): Uint8Array {
  try {
    return new Uint8Array(bytes);
  } catch (err) {
    throw new CryptoTensorsError(
      "ERR_CT_UNSUPPORTED",
      `external data file ${JSON.stringify(file)} of ${bytes} bytes is too large to rebuild in memory`,
      { cause: err },
    );
  }
}

export function serializeManifest(m: OnnxManifest): string {
  return JSON.stringify({ version: m.version, graph: m.graph, graph_sha256: m.graphSha256, inline: m.inline, external: m.external });
}

/** @throws ERR_CT_FORMAT */
export function parseManifest(text: string | undefined): OnnxManifest {
  if (text === undefined) throw bad(`the container has no ${quote(ONNX_MANIFEST_KEY)} metadata: it does not hold ONNX weights`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw bad(`${ONNX_MANIFEST_KEY} is not JSON`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw bad(`${ONNX_MANIFEST_KEY} is not a JSON object`);
  const j = parsed as Record<string, unknown>;
  const strings = (v: unknown) => Array.isArray(v) && v.every((s) => typeof s === "string");
  const ext = j.external;
  if (
    j.version !== 1 ||
    typeof j.graph !== "string" ||
    typeof j.graph_sha256 !== "string" ||
    !strings(j.inline) ||
    !Array.isArray(ext) ||
    !ext.every((e) => e && typeof e.file === "string" && Number.isSafeInteger(e.bytes) && e.bytes >= 0)
  ) {
    throw bad(`${ONNX_MANIFEST_KEY} is malformed or of an unsupported version`);
  }
  return {
    version: 1,
    graph: j.graph,
    graphSha256: j.graph_sha256,
    inline: j.inline as string[],
    external: (ext as { file: string; bytes: number }[]).map((e) => ({ file: checkLocation(e.file), bytes: e.bytes })),
  };
}
