// What the Ed25519 signature covers (docs/format.md §4.1): the canonical header JSON without
// `__signature__` and without padding, tensors in data order with their final offsets.

import type { SafetensorsHeader, TensorInfo } from "../format/header.js";
import { serializeHeaderJson } from "../format/serialize.js";
import { SIGNATURE_KEY } from "./reserved.js";

const encoder = new TextEncoder();

export function signedMessage(metadata: ReadonlyMap<string, string>, tensors: readonly TensorInfo[]): Uint8Array {
  const unsigned = new Map(metadata);
  unsigned.delete(SIGNATURE_KEY);
  return encoder.encode(serializeHeaderJson(unsigned, tensors));
}

export function signedMessageOf(header: SafetensorsHeader): Uint8Array {
  return signedMessage(header.metadata ?? new Map(), header.tensors);
}
