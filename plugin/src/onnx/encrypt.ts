// ONNX weights into and out of CryptoTensors containers (layout: onnx/model.ts), for the CLI.
// Encryption works in memory (ONNX files are at most 2 GB plus their external data; the model is
// loaded whole by onnxruntime anyway).

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { basename, dirname, join, posix } from "node:path";
import { CryptoTensorsError } from "../errors.js";
import { TAG_BYTES } from "../crypto/aead-params.js";
import { sealInto } from "../crypto/aead.js";
import { chunkCount, chunkNonceInto } from "../crypto/chunked.js";
import { layoutTensors } from "../format/serialize.js";
import { withAtomicFile, writeAll } from "../io/files.js";
import { mapIoErrors } from "../io/io-error.js";
import { CryptoTensorsReader, type OpenOptions } from "../container/reader.js";
import { encryptionLayout, selectTensors, type EncryptOptions, type EncryptResult } from "../container/encrypt-file.js";
import { DEFAULT_POLICY, type TensorCryptoEntry } from "../container/reserved.js";
import { buildSignedHeader, newTensorEntry, type HeaderParts } from "../container/writer.js";
import {
  joinOnnx,
  ONNX_CONTAINER_SUFFIX,
  ONNX_MANIFEST_KEY,
  parseManifest,
  splitOnnx,
  serializeManifest,
  type OnnxManifest,
} from "./model.js";

export function sha256Base64(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("base64");
}

export interface EncryptedOnnx {
  graph: Uint8Array;
  container: Uint8Array;
  /** External-data files read, relative to the graph's folder. */
  consumed: string[];
  result: EncryptResult;
}

/**
 * Encrypts the weights of one ONNX model. `readExternal(location)` reads an external-data file named by
 * the graph (relative to the graph's folder).
 */
export function encryptOnnx(
  model: Uint8Array,
  graphName: string,
  readExternal: (location: string) => Uint8Array,
  options: EncryptOptions,
): EncryptedOnnx {
  const layout = encryptionLayout(options);
  const chunkBytes = layout.chunkBytes;
  const split = splitOnnx(model, readExternal);
  if (split.weights.length === 0)
    throw new CryptoTensorsError("ERR_CT_FORMAT", `${graphName} has no initializer with raw or external data: nothing to encrypt`);
  const manifest: OnnxManifest = {
    version: 1,
    graph: graphName,
    graphSha256: sha256Base64(split.graph),
    inline: split.inline,
    external: split.external,
  };
  const byName = new Map(split.weights.map((w) => [w.name, w]));
  const selected = selectTensors([...byName.keys()], options.tensors);
  const tensors = layoutTensors(split.weights.map((w) => ({ name: w.name, dtype: w.dtype, shape: w.shape })));
  const encryption = new Map<string, TensorCryptoEntry>();
  const digests = options.plaintextDigests !== false ? new Map<string, Uint8Array>() : undefined;
  const total = tensors.length ? tensors[tensors.length - 1]!.end : 0;
  const data = new Uint8Array(total);
  for (const t of tensors) {
    const piece = data.subarray(t.begin, t.end);
    piece.set(byName.get(t.name)!.data);
    if (!selected.has(t.name)) {
      digests?.set(t.name, new Uint8Array(createHash("sha256").update(piece).digest()));
      continue;
    }
    const { entry, dek } = newTensorEntry(layout, options.key.k, piece.length);
    try {
      if (entry.scheme === "monolithic") {
        if (piece.length) entry.tag.set(sealInto(layout.alg, dek, entry.iv, piece, piece));
      } else {
        const chunk = chunkBytes!;
        const nonce = new Uint8Array(12);
        for (let i = 0; i < chunkCount(piece.length, chunk); i++) {
          const part = piece.subarray(i * chunk, Math.min(piece.length, (i + 1) * chunk));
          entry.tags.set(sealInto(layout.alg, dek, chunkNonceInto(entry.baseIv, i, nonce), part, part), i * TAG_BYTES);
        }
      }
    } finally {
      dek.fill(0);
    }
    encryption.set(t.name, entry);
  }
  const parts: HeaderParts = {
    userMetadata: new Map([[ONNX_MANIFEST_KEY, serializeManifest(manifest)]]),
    layout,
    encryption,
    policy: options.policy ?? DEFAULT_POLICY,
    digests: digests?.size ? digests : undefined,
    tensors,
  };
  const header = buildSignedHeader(parts, options.signKey);
  const container = new Uint8Array(header.length + data.length);
  container.set(header, 0);
  container.set(data, header.length);
  data.fill(0);
  return {
    graph: split.graph,
    container,
    consumed: split.consumed,
    result: { tensors: tensors.length, encrypted: encryption.size, bytes: total },
  };
}

/** Encrypts `inRoot/rel` (an .onnx file) into `outRoot/rel` (graph) and `outRoot/rel.cryptotensors`. */
export async function encryptOnnxFile(
  inRoot: string,
  outRoot: string,
  rel: string,
  options: EncryptOptions,
): Promise<{ written: string[]; consumed: string[]; result: EncryptResult }> {
  const model = new Uint8Array(await readFile(join(inRoot, rel)));
  const dir = dirname(rel);
  const out = encryptOnnx(model, basename(rel), (loc) => new Uint8Array(readFileSync(join(inRoot, dir, loc))), options);
  const graphOut = join(outRoot, rel);
  const containerOut = graphOut + ONNX_CONTAINER_SUFFIX;
  await withAtomicFile(graphOut, 0o644, (fh) => writeAll(fh, out.graph, 0));
  await withAtomicFile(containerOut, 0o644, (fh) => writeAll(fh, out.container, 0));
  return {
    written: [graphOut, containerOut],
    consumed: [rel, ...out.consumed.map((c) => posix.join(dir.split("\\").join("/"), c))],
    result: out.result,
  };
}

/**
 * Checks a stripped graph against its container's signed manifest.
 * @throws ERR_CT_INTEGRITY when the graph was modified, ERR_CT_FORMAT when the manifest is missing or names another graph
 */
export function checkGraph(
  graph: Uint8Array,
  graphName: string,
  manifestText: string | undefined,
  sha256: (d: Uint8Array) => string = sha256Base64,
): OnnxManifest {
  const manifest = parseManifest(manifestText);
  if (manifest.graph !== graphName)
    throw new CryptoTensorsError("ERR_CT_FORMAT", `the container holds the weights of ${manifest.graph}, not of ${graphName}`);
  if (sha256(graph) !== manifest.graphSha256) {
    throw new CryptoTensorsError(
      "ERR_CT_INTEGRITY",
      `${graphName} does not match the signed digest in its container: the graph was modified`,
    );
  }
  return manifest;
}

/**
 * Verifies and decrypts `inRoot/rel.cryptotensors` and writes the original `outRoot/rel` and its
 * external-data files (mode 0600: plaintext weights).
 */
export async function decryptOnnxFile(
  inRoot: string,
  outRoot: string,
  rel: string,
  options: OpenOptions,
): Promise<{ written: string[]; tensors: number }> {
  const graph = new Uint8Array(await readFile(join(inRoot, rel)));
  const reader = await CryptoTensorsReader.open(join(inRoot, rel) + ONNX_CONTAINER_SUFFIX, options);
  try {
    const manifest = checkGraph(graph, basename(rel), reader.header.metadata?.get(ONNX_MANIFEST_KEY));
    const { model, external } = await joinOnnx(graph, manifest, (name) => reader.readTensor(name));
    const written: string[] = [];
    const put = async (path: string, data: Uint8Array) => {
      await mapIoErrors(dirname(path), "creating", () => mkdir(dirname(path), { recursive: true }));
      await withAtomicFile(path, 0o600, (fh) => writeAll(fh, data, 0));
      written.push(path);
      data.fill(0);
    };
    for (const [loc, data] of external) await put(join(outRoot, dirname(rel), loc), data);
    await put(join(outRoot, rel), model);
    return { written, tensors: reader.tensors.length };
  } finally {
    await reader.close();
  }
}
