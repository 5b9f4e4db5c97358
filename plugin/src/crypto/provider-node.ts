// CryptoProvider on node:crypto (OpenSSL).

import { createHash } from "node:crypto";
import { open } from "./aead.js";
import type { CryptoProvider } from "./provider.js";

export const nodeCryptoProvider: CryptoProvider = {
  async aeadOpen(alg, key, nonce, ciphertext, tag) {
    return open(alg, key, nonce, ciphertext, tag);
  },
  async sha256(data) {
    return new Uint8Array(createHash("sha256").update(data).digest());
  },
};
