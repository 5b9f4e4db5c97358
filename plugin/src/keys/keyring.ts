// Chooses the master key for a file from the keys the caller supplied, by the header's `kid` and `alg`
// (docs/format.md §6.3), and honours a `file://` `jku` the way the reference's FileKeyProvider does.

import { fileURLToPath } from "node:url";
import { CryptoTensorsError } from "../errors.js";
import { quote } from "../format/printable.js";
import type { KeyRef } from "../container/reserved.js";
import { parseAeadAlgorithm } from "../crypto/aead.js";
import type { EncryptionKey, Key } from "./jwk.js";
import { loadKeys } from "./sources.js";

export interface ResolveOptions {
  /** Follow a `file://` jku named by the header when no supplied key matches (the reference does). Default true. */
  followFileJku?: boolean;
}

/**
 * Selects the master key for `ref`: the key with the same `kid`; else, when exactly one supplied key
 * has no kid (or the header names none), that key. The key's algorithm must match the header's.
 * @throws ERR_CT_KEY_NOT_FOUND, ERR_CT_KEY_INVALID
 */
export async function resolveEncryptionKey(keys: readonly Key[], ref: KeyRef, options: ResolveOptions = {}): Promise<EncryptionKey> {
  let candidates = keys.filter((k): k is EncryptionKey => k.kind === "enc");
  let key = pick(candidates, ref);
  if (!key && ref.jku?.startsWith("file://") && options.followFileJku !== false) {
    candidates = (await loadKeys(fileURLToPath(ref.jku), { label: `the key set the file names (jku ${quote(ref.jku)})` })).filter(
      (k): k is EncryptionKey => k.kind === "enc",
    );
    key = pick(candidates, ref);
  }
  if (!key) {
    const have = keys.filter((k) => k.kind === "enc").map((k) => (k.kid === undefined ? "(no kid)" : quote(k.kid)));
    throw new CryptoTensorsError(
      "ERR_CT_KEY_NOT_FOUND",
      `no master key for this file: it names kid ${quote(ref.kid ?? null)}${ref.jku ? ` at ${quote(ref.jku)}` : ""}; ` +
        (have.length ? `the supplied keys are ${have.join(", ")}` : "no encryption key was supplied"),
      { option: "key" },
    );
  }
  const alg = parseAeadAlgorithm(ref.alg);
  if (alg !== key.alg) {
    throw new CryptoTensorsError("ERR_CT_KEY_INVALID", `the master key is ${key.alg} but the file was encrypted with ${quote(ref.alg)}`);
  }
  return key;
}

function pick(candidates: EncryptionKey[], ref: KeyRef): EncryptionKey | undefined {
  if (ref.kid !== undefined) {
    const exact = candidates.find((k) => k.kid === ref.kid);
    if (exact) return exact;
    const anonymous = candidates.filter((k) => k.kid === undefined);
    return anonymous.length === 1 ? anonymous[0] : undefined;
  }
  return candidates.length >= 1 ? candidates[0] : undefined;
}
