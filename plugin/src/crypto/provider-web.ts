// CryptoProvider for browsers: WebCrypto AES-GCM (native) and SHA-256; ChaCha20-Poly1305, which
// WebCrypto lacks, from @noble/ciphers (audited, pure JS).

import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { decryptionFailed } from "../errors.js";
import { TAG_BYTES } from "./aead-params.js";
import type { CryptoProvider } from "./provider.js";

function subtle(): typeof globalThis.crypto.subtle {
  const s = globalThis.crypto?.subtle;
  if (!s) throw new TypeError("WebCrypto (crypto.subtle) is not available: serve the page over https:// or from localhost");
  return s;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

type WebCryptoKey = Awaited<ReturnType<ReturnType<typeof subtle>["importKey"]>>;

/** Imported AES keys, per raw key buffer (a tensor's chunks share one data key). */
const aesKeys = new WeakMap<Uint8Array, Promise<WebCryptoKey>>();

function aesKey(raw: Uint8Array): Promise<WebCryptoKey> {
  let k = aesKeys.get(raw);
  if (!k) {
    k = subtle().importKey("raw", raw.slice(), { name: "AES-GCM" }, false, ["decrypt"]);
    aesKeys.set(raw, k);
  }
  return k;
}

export const webCryptoProvider: CryptoProvider = {
  async aeadOpen(alg, key, nonce, ciphertext, tag) {
    if (tag.length !== TAG_BYTES || nonce.length !== 12) throw decryptionFailed();
    if (alg === "chacha20poly1305") {
      try {
        return chacha20poly1305(key, nonce).decrypt(concat(ciphertext, tag));
      } catch {
        throw decryptionFailed();
      }
    }
    try {
      const k = await aesKey(key);
      const plain = await subtle().decrypt({ name: "AES-GCM", iv: nonce, tagLength: 128 }, k, concat(ciphertext, tag));
      return new Uint8Array(plain);
    } catch {
      throw decryptionFailed();
    }
  },
  async sha256(data) {
    return new Uint8Array(await subtle().digest("SHA-256", data));
  },
};
