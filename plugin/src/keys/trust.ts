// Signer trust: a header is verified only with public keys the caller pinned (the `trust` keys / a
// trust-store file), never with a key the file names for itself (docs/format.md §4.2, §11.2 item 3).

import { CryptoTensorsError, noTrustedSigner } from "../errors.js";
import { quote } from "../format/printable.js";
import { ed25519Verify } from "../crypto/signature.js";
import type { KeyRef } from "../container/reserved.js";
import { publicKeyOf, type Key, type SigningKey } from "./jwk.js";
import { loadAllKeys, type KeySourceOptions, type KeySpec } from "./sources.js";

export class TrustStore {
  readonly keys: readonly SigningKey[];

  constructor(keys: readonly Key[]) {
    // Only public halves are kept: trust needs no private material.
    this.keys = keys.filter((k): k is SigningKey => k.kind === "sign").map(publicKeyOf);
  }

  static async load(specs: readonly KeySpec[], options?: KeySourceOptions): Promise<TrustStore> {
    return new TrustStore(await loadAllKeys(specs, options));
  }

  get size(): number {
    return this.keys.length;
  }

  /**
   * Verifies `signature` over `message` and returns the trusted key that made it.
   * Keys whose kid matches the header's are tried first; kid-less trusted keys are tried too.
   * @throws ERR_CT_UNTRUSTED_SIGNER (no trusted key could have signed), ERR_CT_SIGNATURE_INVALID (a trusted key was named but the signature does not verify)
   */
  verify(message: Uint8Array, signature: Uint8Array, signer: KeyRef): SigningKey {
    if (this.keys.length === 0) throw noTrustedSigner();
    const eligible = this.keys.filter((k) => signer.kid === undefined || k.kid === undefined || k.kid === signer.kid);
    for (const k of eligible) {
      if (ed25519Verify(k.x, message, signature)) return k;
    }
    if (eligible.length === 0) {
      throw new CryptoTensorsError(
        "ERR_CT_UNTRUSTED_SIGNER",
        `the file is signed by key ${quote(signer.kid)}, which is not among the trusted keys (${this.keys.map((k) => (k.kid === undefined ? "(no kid)" : quote(k.kid))).join(", ")})`,
      );
    }
    throw new CryptoTensorsError(
      "ERR_CT_SIGNATURE_INVALID",
      "header signature does not verify with the trusted key(s): the header was modified or signed by someone else",
    );
  }
}
