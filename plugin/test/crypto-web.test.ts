// The browser crypto (crypto/provider-web.ts, crypto/aead.web.ts, crypto/signature.web.ts) against the
// node:crypto implementations, run in Node (which has WebCrypto too): same bytes both ways, same errors.

import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { AEAD_ALGORITHMS } from "../src/crypto/aead-params.js";
import * as nodeAead from "../src/crypto/aead.js";
import * as webAead from "../src/crypto/aead.web.js";
import * as nodeSig from "../src/crypto/signature.js";
import * as webSig from "../src/crypto/signature.web.js";
import { nodeCryptoProvider } from "../src/crypto/provider-node.js";
import { webCryptoProvider } from "../src/crypto/provider-web.js";
import { CryptoTensorsError } from "../src/errors.js";

const rnd = (n: number) => new Uint8Array(randomBytes(n));

describe("web crypto backends agree with node:crypto", () => {
  for (const alg of AEAD_ALGORITHMS) {
    it(`${alg}: node seals, web opens (provider and sync API), and the reverse; tampering fails the same way`, async () => {
      const key = rnd(nodeAead.aeadKeyBytes(alg));
      const nonce = rnd(12);
      for (const size of [0, 1, 4097, 100_000]) {
        const plain = rnd(size);
        const [ct, tag] = nodeAead.seal(alg, key, nonce, plain);
        expect(await webCryptoProvider.aeadOpen(alg, key, nonce, ct, tag)).toEqual(plain);
        expect(webAead.open(alg, key, nonce, ct, tag)).toEqual(plain);
        const [ct2, tag2] = webAead.seal(alg, key, nonce, plain);
        expect(ct2).toEqual(ct);
        expect(tag2).toEqual(tag);
        expect(await nodeCryptoProvider.aeadOpen(alg, key, nonce, ct2, tag2)).toEqual(plain);
        const bad = tag.slice();
        bad[0]! ^= 1;
        for (const attempt of [
          () => webCryptoProvider.aeadOpen(alg, key, nonce, ct, bad),
          async () => webAead.open(alg, key, nonce, ct, bad),
        ]) {
          const err = await attempt().then(
            () => null,
            (e: unknown) => e,
          );
          expect(err).toBeInstanceOf(CryptoTensorsError);
          expect((err as CryptoTensorsError).code).toBe("ERR_CT_DECRYPTION_FAILED");
        }
      }
    });
  }

  it("Ed25519: same public key and signature; each verifies the other's", () => {
    const seed = rnd(32);
    const msg = rnd(300);
    expect(webSig.ed25519PublicKey(seed)).toEqual(nodeSig.ed25519PublicKey(seed));
    const sig = nodeSig.ed25519Sign(seed, msg);
    expect(webSig.ed25519Sign(seed, msg)).toEqual(sig); // deterministic (RFC 8032)
    expect(webSig.ed25519Verify(nodeSig.ed25519PublicKey(seed), msg, sig)).toBe(true);
    const bad = sig.slice();
    bad[10]! ^= 1;
    expect(webSig.ed25519Verify(nodeSig.ed25519PublicKey(seed), msg, bad)).toBe(false);
    expect(nodeSig.ed25519Verify(webSig.ed25519PublicKey(seed), msg, webSig.ed25519Sign(seed, msg))).toBe(true);
  });

  it("SHA-256 matches", async () => {
    const data = rnd(5000);
    expect(await webCryptoProvider.sha256(data)).toEqual(await nodeCryptoProvider.sha256(data));
  });
});
