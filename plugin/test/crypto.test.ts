// Known-answer tests for the cryptographic building blocks (src/crypto/*): the three AEADs, Ed25519,
// strict base64, v2 chunk nonces, DEK wrapping, and the writer's v1/v2 tensor encryption.
// Spec: docs/format.md §3, §4.
//
// Vector provenance is given next to each vector. "Derived" vectors (no published vector has the exact
// shape the format needs) were computed with Python `cryptography` 48.0.0 (OpenSSL-backed; the system
// python3 — the project .venv has no `cryptography`) using an independent Python implementation of the
// spec's rules, and are checked here against our code (node:crypto). Where a published vector exists
// it is used verbatim.

import { open as openFile } from "node:fs/promises";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  AEAD_ALGORITHMS,
  aeadKeyBytes,
  open,
  openInto,
  parseAeadAlgorithm,
  seal,
  sealInto,
  type AeadAlgorithm,
} from "../src/crypto/aead.js";
import { decodeBase64, decodeBase64Url, encodeBase64, encodeBase64Url } from "../src/crypto/base64.js";
import { chunkCount, chunkNonce, chunkNonceInto, counterFits, DEFAULT_CHUNK_BYTES } from "../src/crypto/chunked.js";
import { ed25519PublicKey, ed25519Sign, ed25519Verify } from "../src/crypto/signature.js";
import { generateDek, unwrapKey, wrapKey } from "../src/crypto/wrap.js";
import { encryptTensorData } from "../src/container/writer.js";
import type { TensorCryptoEntry } from "../src/container/reserved.js";
import { CryptoTensorsError, DECRYPTION_FAILED_MESSAGE } from "../src/errors.js";
import { tempDir, thrown } from "./helpers.js";

const hex = (s: string) => new Uint8Array(Buffer.from(s.replace(/\s+/g, ""), "hex"));
const toHex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const range = (from: number, to: number) => new Uint8Array(to - from).map((_, i) => from + i);

function expectDecryptionFailed(err: unknown): void {
  expect(err).toBeInstanceOf(CryptoTensorsError);
  expect((err as CryptoTensorsError).code).toBe("ERR_CT_DECRYPTION_FAILED");
  expect((err as Error).message).toBe(DECRYPTION_FAILED_MESSAGE);
}

// ------------------------------------------------------------------------------------------------
// AEAD known answers (AAD is always empty in this format, §3.1)

interface AeadVector {
  source: string;
  alg: AeadAlgorithm;
  key: string;
  nonce: string;
  pt: string;
  ct: string;
  tag: string;
}

// The GCM test cases of McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)" (revised 2005),
// Appendix B, as also used by NIST's GCM validation. Only cases with a 96-bit IV and empty AAD are used.
const GCM_P =
  "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
const GCM_VECTORS: AeadVector[] = [
  {
    source: "McGrew–Viega GCM Test Case 1 (AES-128, empty P)",
    alg: "aes128gcm",
    key: "00000000000000000000000000000000",
    nonce: "000000000000000000000000",
    pt: "",
    ct: "",
    tag: "58e2fccefa7e3061367f1d57a4e7455a",
  },
  {
    source: "McGrew–Viega GCM Test Case 2 (AES-128)",
    alg: "aes128gcm",
    key: "00000000000000000000000000000000",
    nonce: "000000000000000000000000",
    pt: "00000000000000000000000000000000",
    ct: "0388dace60b6a392f328c2b971b2fe78",
    tag: "ab6e47d42cec13bdf53a67b21257bddf",
  },
  {
    source: "McGrew–Viega GCM Test Case 3 (AES-128, 64 bytes)",
    alg: "aes128gcm",
    key: "feffe9928665731c6d6a8f9467308308",
    nonce: "cafebabefacedbaddecaf888",
    pt: GCM_P,
    ct: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
    tag: "4d5c2af327cd64a62cf35abd2ba6fab4",
  },
  {
    source: "McGrew–Viega GCM Test Case 13 (AES-256, empty P)",
    alg: "aes256gcm",
    key: "0000000000000000000000000000000000000000000000000000000000000000",
    nonce: "000000000000000000000000",
    pt: "",
    ct: "",
    tag: "530f8afbc74536b9a963b4f1c4cb738b",
  },
  {
    source: "McGrew–Viega GCM Test Case 14 (AES-256)",
    alg: "aes256gcm",
    key: "0000000000000000000000000000000000000000000000000000000000000000",
    nonce: "000000000000000000000000",
    pt: "00000000000000000000000000000000",
    ct: "cea7403d4d606b6e074ec5d3baf39d18",
    tag: "d0d1c8a799996bf0265b98b5d48ab919",
  },
  {
    source: "McGrew–Viega GCM Test Case 15 (AES-256, 64 bytes)",
    alg: "aes256gcm",
    key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
    nonce: "cafebabefacedbaddecaf888",
    pt: GCM_P,
    ct: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
    tag: "b094dac5d93471bdec1a502270e3cc6c",
  },
];

// ChaCha20-Poly1305: RFC 8439 §2.8.2 has AAD, so the published empty-AAD vectors come from Project
// Wycheproof, testvectors/chacha20_poly1305_test.json (google/wycheproof @ 8f2cba4), tcIds 2, 4, 16, 24.
// The "sunscreen" vector: key/nonce/plaintext/ciphertext are RFC 8439 §2.4.2's ChaCha20 test vector (the
// AEAD encrypts with block counter 1, exactly as RFC 8439 §2.4.2 does, so the ciphertext is the published one);
// its Poly1305 tag over empty AAD is derived (Python `cryptography` 48.0.0).
const SUNSCREEN = Buffer.from(
  "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
).toString("hex");
const CHACHA_VECTORS: AeadVector[] = [
  {
    source: "Wycheproof chacha20_poly1305 tcId 2 (empty)",
    alg: "chacha20poly1305",
    key: "80ba3192c803ce965ea371d5ff073cf0f43b6a2ab576b208426e11409c09b9b0",
    nonce: "4da5bf8dfd5852c1ea12379d",
    pt: "",
    ct: "",
    tag: "76acb342cf3166a5b63c0c0ea1383c8d",
  },
  {
    source: "Wycheproof chacha20_poly1305 tcId 4",
    alg: "chacha20poly1305",
    key: "cc56b680552eb75008f5484b4cb803fa5063ebd6eab91f6ab6aef4916a766273",
    nonce: "99e23ec48985bccdeeab60f1",
    pt: "2a",
    ct: "3a",
    tag: "cac27dec0968801e9f6eded69d807522",
  },
  {
    source: "Wycheproof chacha20_poly1305 tcId 16",
    alg: "chacha20poly1305",
    key: "59d4eafb4de0cfc7d3db99a8f54b15d7b39f0acc8da69763b019c1699f87674a",
    nonce: "2fcb1b38a99e71b84740ad9b",
    pt: "549b365af913f3b081131ccb6b825588",
    ct: "e9110e9f56ab3ca483500ceabab67a13",
    tag: "836ccabf15a6a22a51c1071cfa68fa0c",
  },
  {
    source: "Wycheproof chacha20_poly1305 tcId 24",
    alg: "chacha20poly1305",
    key: "e1731d5854e1b70cb3ffe8b786a2b3ebf0994370954757b9dc8c7bc5354634a3",
    nonce: "72cfd90ef3026ca22b7e6e6a",
    pt: "b9c554cbc36ac18ae897df7beecac1dbeb4eafa156bb60ce2e5d48f05715e678",
    ct: "ea29afa49d36e8760f5fe19723b9811ed5d519934a440f5081ac430b953b0e21",
    tag: "222541af46b86533c6b68d2ff108a7ea",
  },
  {
    source: "RFC 8439 §2.4.2 key/nonce/plaintext/ciphertext + derived empty-AAD tag",
    alg: "chacha20poly1305",
    key: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
    nonce: "000000000000004a00000000",
    pt: SUNSCREEN,
    ct: `6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0bf91b65c5524733ab8f593dabcd62b3571639d624e65152ab
      8f530c359f0861d807ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab77937365af90bbf74a35be6b40b8eedf2785e42874d`,
    tag: "81db63fcb189a03121ae0ac72a3f1f36",
  },
];

describe("AEAD known answers (empty AAD)", () => {
  for (const v of [...GCM_VECTORS, ...CHACHA_VECTORS]) {
    it(`${v.source}: seal`, () => {
      const [ct, tag] = seal(v.alg, hex(v.key), hex(v.nonce), hex(v.pt));
      expect(toHex(ct)).toBe(toHex(hex(v.ct)));
      expect(toHex(tag)).toBe(v.tag);
    });
    it(`${v.source}: open, and a flipped tag or ciphertext bit fails`, () => {
      expect(toHex(open(v.alg, hex(v.key), hex(v.nonce), hex(v.ct), hex(v.tag)))).toBe(toHex(hex(v.pt)));
      const badTag = hex(v.tag);
      badTag[15]! ^= 0x01;
      expectDecryptionFailed(thrown(() => open(v.alg, hex(v.key), hex(v.nonce), hex(v.ct), badTag)));
      if (v.ct.length) {
        const badCt = hex(v.ct);
        badCt[0]! ^= 0x80;
        expectDecryptionFailed(thrown(() => open(v.alg, hex(v.key), hex(v.nonce), badCt, hex(v.tag))));
      }
      const badNonce = hex(v.nonce);
      badNonce[11]! ^= 0x01;
      expectDecryptionFailed(thrown(() => open(v.alg, hex(v.key), badNonce, hex(v.ct), hex(v.tag))));
    });
  }

  it("sealInto and openInto work in place", () => {
    const v = GCM_VECTORS[5]!;
    const buf = hex(v.pt);
    const tag = sealInto(v.alg, hex(v.key), hex(v.nonce), buf, buf);
    expect(toHex(buf)).toBe(v.ct);
    expect(toHex(tag)).toBe(v.tag);
    openInto(v.alg, hex(v.key), hex(v.nonce), buf, tag, buf);
    expect(toHex(buf)).toBe(v.pt);
  });

  it("algorithm names: lenient parsing like the reference, key sizes", () => {
    expect(parseAeadAlgorithm("AES-256-GCM")).toBe("aes256gcm");
    expect(parseAeadAlgorithm("aes-128-gcm")).toBe("aes128gcm");
    expect(parseAeadAlgorithm("ChaCha20-Poly1305")).toBe("chacha20poly1305");
    expect(parseAeadAlgorithm("aes256gcm")).toBe("aes256gcm");
    expect(parseAeadAlgorithm("A256GCM")).toBeUndefined();
    expect(parseAeadAlgorithm("aes_256_gcm")).toBeUndefined();
    expect(parseAeadAlgorithm("")).toBeUndefined();
    expect(AEAD_ALGORITHMS.map(aeadKeyBytes)).toEqual([32, 16, 32]);
  });

  it("wrong key or nonce lengths are programming errors (TypeError)", () => {
    expect(() => seal("aes256gcm", new Uint8Array(16), new Uint8Array(12), new Uint8Array(1))).toThrow(TypeError);
    expect(() => seal("aes128gcm", new Uint8Array(32), new Uint8Array(12), new Uint8Array(1))).toThrow(TypeError);
    expect(() => seal("chacha20poly1305", new Uint8Array(32), new Uint8Array(8), new Uint8Array(1))).toThrow(TypeError);
  });
});

describe("openInto on failure", () => {
  for (const alg of AEAD_ALGORITHMS) {
    it(`${alg}: zeroes out, throws the fixed ERR_CT_DECRYPTION_FAILED message`, () => {
      const key = range(1, 1 + aeadKeyBytes(alg));
      const nonce = range(0x40, 0x4c);
      const pt = range(0, 200).map((b) => b | 1); // no zero bytes, so zeroing is visible
      const [ct, tag] = seal(alg, key, nonce, pt);
      // A bad tag, a modified ciphertext, a wrong key: the output buffer must not keep any plaintext.
      const badTag = tag.slice();
      badTag[0]! ^= 1;
      const badCt = ct.slice();
      badCt[199]! ^= 1;
      const wrongKey = key.slice();
      wrongKey[0]! ^= 1;
      for (const [k, c, t] of [
        [key, ct, badTag],
        [key, badCt, tag],
        [wrongKey, ct, tag],
      ] as const) {
        const out = new Uint8Array(ct.length).fill(0xaa);
        expectDecryptionFailed(thrown(() => openInto(alg, k, nonce, c, t, out)));
        expect(out.every((b) => b === 0)).toBe(true);
        // In place, too (the reader decrypts in its read buffer).
        const inPlace = c.slice();
        expectDecryptionFailed(thrown(() => openInto(alg, k, nonce, inPlace, t, inPlace)));
        expect(inPlace.every((b) => b === 0)).toBe(true);
      }
    });

    it(`${alg}: a tag that is not 16 bytes fails with the same error and writes no plaintext`, () => {
      const key = range(1, 1 + aeadKeyBytes(alg));
      const nonce = range(0x40, 0x4c);
      const pt = range(1, 65);
      const [ct, tag] = seal(alg, key, nonce, pt);
      for (const t of [tag.subarray(0, 15), new Uint8Array(0), new Uint8Array([...tag, 0])]) {
        const out = new Uint8Array(ct.length);
        expectDecryptionFailed(thrown(() => openInto(alg, key, nonce, ct, t, out)));
        expect(Buffer.from(out).equals(Buffer.from(pt))).toBe(false);
        expect(out.every((b) => b === 0)).toBe(true);
      }
    });
  }

  it("the fixed message says nothing about which part failed", () => {
    expect(DECRYPTION_FAILED_MESSAGE).toBe("decryption failed: wrong key, or the ciphertext, tag or wrapped key was modified");
  });
});

// ------------------------------------------------------------------------------------------------
// Ed25519: RFC 8032 §7.1, TEST 1–3

const RFC8032 = [
  {
    name: "TEST 1 (empty message)",
    secret: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    public: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    message: "",
    signature:
      "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
  },
  {
    name: "TEST 2 (one byte)",
    secret: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    public: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
    message: "72",
    signature:
      "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
  },
  {
    name: "TEST 3 (two bytes)",
    secret: "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
    public: "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
    message: "af82",
    signature:
      "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
  },
];

describe("Ed25519 (RFC 8032 §7.1)", () => {
  for (const v of RFC8032) {
    it(`${v.name}: public key and signature from the seed, verify`, () => {
      expect(toHex(ed25519PublicKey(hex(v.secret)))).toBe(v.public);
      expect(toHex(ed25519Sign(hex(v.secret), hex(v.message)))).toBe(v.signature);
      expect(ed25519Verify(hex(v.public), hex(v.message), hex(v.signature))).toBe(true);
    });
    it(`${v.name}: wrong message, flipped signature bit, other key all fail`, () => {
      expect(ed25519Verify(hex(v.public), new Uint8Array([...hex(v.message), 0]), hex(v.signature))).toBe(false);
      const sig = hex(v.signature);
      sig[10]! ^= 0x04;
      expect(ed25519Verify(hex(v.public), hex(v.message), sig)).toBe(false);
      const other = RFC8032.find((o) => o !== v)!;
      expect(ed25519Verify(hex(other.public), hex(v.message), hex(v.signature))).toBe(false);
    });
  }

  it("malformed signatures and keys verify as false", () => {
    const v = RFC8032[0]!;
    expect(ed25519Verify(hex(v.public), hex(v.message), hex(v.signature).subarray(0, 63))).toBe(false);
    expect(ed25519Verify(hex(v.public), hex(v.message), new Uint8Array(0))).toBe(false);
    expect(ed25519Verify(hex(v.public).subarray(0, 31), hex(v.message), hex(v.signature))).toBe(false);
  });

  it("a seed of the wrong length is a TypeError", () => {
    expect(() => ed25519Sign(new Uint8Array(31), new Uint8Array(0))).toThrow(TypeError);
    expect(() => ed25519PublicKey(new Uint8Array(64))).toThrow(TypeError);
  });
});

// ------------------------------------------------------------------------------------------------

describe("strict base64 (§3.6)", () => {
  // RFC 4648 §10 test vectors.
  const RFC4648: [string, string, string][] = [
    ["", "", ""],
    ["f", "Zg==", "Zg"],
    ["fo", "Zm8=", "Zm8"],
    ["foo", "Zm9v", "Zm9v"],
    ["foob", "Zm9vYg==", "Zm9vYg"],
    ["fooba", "Zm9vYmE=", "Zm9vYmE"],
    ["foobar", "Zm9vYmFy", "Zm9vYmFy"],
  ];

  it("RFC 4648 §10 vectors, standard (padded) and base64url (unpadded)", () => {
    for (const [text, std, url] of RFC4648) {
      const raw = new Uint8Array(Buffer.from(text));
      expect(encodeBase64(raw)).toBe(std);
      expect(encodeBase64Url(raw)).toBe(url);
      expect(Buffer.from(decodeBase64(std)!).toString()).toBe(text);
      expect(Buffer.from(decodeBase64Url(url)!).toString()).toBe(text);
    }
  });

  it("padding is required by decodeBase64", () => {
    expect(decodeBase64("Zg")).toBeUndefined();
    expect(decodeBase64("Zm8")).toBeUndefined();
    expect(decodeBase64("Zg=")).toBeUndefined();
    expect(decodeBase64("Zg===")).toBeUndefined();
    expect(decodeBase64("Z===")).toBeUndefined();
    expect(decodeBase64("Zm9v====")).toBeUndefined();
  });

  it("non-canonical trailing bits are rejected", () => {
    expect(decodeBase64("Zh==")).toBeUndefined(); // "f" is Zg==
    expect(decodeBase64("Zm9=")).toBeUndefined(); // "fo" is Zm8=
    expect(decodeBase64("AB==")).toBeUndefined();
    expect(toHex(decodeBase64("AA==")!)).toBe("00");
    expect(decodeBase64Url("Zh")).toBeUndefined();
    expect(decodeBase64Url("Zm9")).toBeUndefined();
  });

  it("url-safe input is rejected by decodeBase64 but accepted by decodeBase64Url", () => {
    // fb ff bf: standard "+/+/", url-safe "-_-_"
    const raw = hex("fbffbf");
    expect(encodeBase64(raw)).toBe("+/+/");
    expect(encodeBase64Url(raw)).toBe("-_-_");
    expect(decodeBase64("-_-_")).toBeUndefined();
    expect(toHex(decodeBase64Url("-_-_")!)).toBe("fbffbf");
    expect(decodeBase64Url("+/+/")).toBeUndefined();
    expect(toHex(decodeBase64("+/+/")!)).toBe("fbffbf");
    expect(decodeBase64Url("-_8")).toEqual(hex("fbff"));
    expect(decodeBase64Url("-_8=")).toBeUndefined(); // JOSE base64url has no padding
  });

  it("whitespace, junk and impossible lengths are rejected (Node's decoder would skip them)", () => {
    for (const bad of ["Zm9v\n", " Zm9v", "Zm 9v", "Zm9v!", "Z", "Zm9vY", "Zm9v\u0000", "Zm=v", "=Zm9"]) {
      expect(decodeBase64(bad), JSON.stringify(bad)).toBeUndefined();
    }
    for (const bad of ["Z", "Zm9vY", "Zm 9", "Zm9v\n", "Zm9v="]) expect(decodeBase64Url(bad), JSON.stringify(bad)).toBeUndefined();
  });

  it("round-trips every byte value and length 0..40", () => {
    for (let len = 0; len <= 40; len++) {
      const raw = range(256 - len, 256);
      expect(decodeBase64(encodeBase64(raw))).toEqual(raw);
      expect(decodeBase64Url(encodeBase64Url(raw))).toEqual(raw);
    }
  });

  it("encodes views at their own offset", () => {
    const backing = new Uint8Array([0xff, 0x66, 0x6f, 0x6f, 0xff]);
    expect(encodeBase64(backing.subarray(1, 4))).toBe("Zm9v");
    expect(encodeBase64Url(backing.subarray(1, 4))).toBe("Zm9v");
  });
});

// ------------------------------------------------------------------------------------------------

describe("v2 chunk nonces (§3.5)", () => {
  it("chunk 0 uses base_iv itself", () => {
    const base = hex("0102030405060708090a0b0c");
    expect(toHex(chunkNonce(base, 0))).toBe("0102030405060708090a0b0c");
    expect(chunkNonce(base, 0)).not.toBe(base); // a copy, not the same buffer
  });

  it("the counter is the big-endian last 4 bytes; the first 8 bytes never change", () => {
    expect(toHex(chunkNonce(hex("101010101010101000000000"), 1))).toBe("101010101010101000000001");
    expect(toHex(chunkNonce(hex("1010101010101010000000ff"), 1))).toBe("101010101010101000000100"); // carries within BE32
    expect(toHex(chunkNonce(hex("10101010101010100000ffff"), 2))).toBe("101010101010101000010001");
    expect(toHex(chunkNonce(hex("ffffffffffffffff00000000"), 0x12345678))).toBe("ffffffffffffffff12345678");
  });

  it("counter ff ff ff fe: + 1 is fine, + 2 overflows and throws ERR_CT_FORMAT (never wraps)", () => {
    const base = hex("aabbccddeeff0011fffffffe");
    expect(toHex(chunkNonce(base, 1))).toBe("aabbccddeeff0011ffffffff");
    const err = thrown(() => chunkNonce(base, 2));
    expect(err).toBeInstanceOf(CryptoTensorsError);
    expect((err as CryptoTensorsError).code).toBe("ERR_CT_FORMAT");
    expect((err as Error).message).toMatch(/overflow/);
    expect(counterFits(base, 1)).toBe(true);
    expect(counterFits(base, 2)).toBe(true); // chunks 0 and 1
    expect(counterFits(base, 3)).toBe(false); // chunk 2 would overflow
    expect(counterFits(hex("000000000000000000000000"), 2 ** 32)).toBe(true);
    expect(counterFits(hex("000000000000000000000001"), 2 ** 32)).toBe(false);
  });

  it("reads a base IV that is a view at a non-zero offset (as decoded base64 often is)", () => {
    const backing = new Uint8Array(20).fill(0xee);
    backing.set(hex("0102030405060708000000ff"), 5);
    const base = backing.subarray(5, 17);
    expect(toHex(chunkNonce(base, 1))).toBe("010203040506070800000100");
    expect(counterFits(base, 2)).toBe(true);
    const out = new Uint8Array(16).fill(9);
    chunkNonceInto(base, 2, out.subarray(3, 15));
    expect(toHex(out)).toBe("090909" + "010203040506070800000101" + "09");
    expect(toHex(backing.subarray(5, 17))).toBe("0102030405060708000000ff"); // base untouched
  });

  it("chunk counts: at least one tag, ceil(len / chunk)", () => {
    expect(DEFAULT_CHUNK_BYTES).toBe(2 * 1024 * 1024);
    expect([0, 1, 15, 16, 17, 48, 49].map((n) => chunkCount(n, 16))).toEqual([1, 1, 1, 1, 2, 3, 4]);
    expect(chunkCount(DEFAULT_CHUNK_BYTES + 1, DEFAULT_CHUNK_BYTES)).toBe(2);
  });
});

// ------------------------------------------------------------------------------------------------

describe("DEK wrapping (§3.3)", () => {
  // Derived KATs (Python `cryptography` 48.0.0): master = 00 01 …, key_iv = 20 … 2b, DEK = a0 a1 …
  const WRAP_KAT: Record<AeadAlgorithm, [string, string]> = {
    aes256gcm: ["729b04d3c83dbca9b2d5e8656db55a5660f85e2f3335d559d44fd6a9f537e0b6", "4cf3a0e51467d647235aeccfa72bad74"],
    aes128gcm: ["6054b0072255dfae13e1257fdd623ad1", "f1199c3ae1683f0f5e953751aebf62e9"],
    chacha20poly1305: ["d3462adfb54a5a9d336c0763e5922117cbdfcc81a4dc29fa3e58871f000665ad", "28b8fc1fa2854b0609b1ae7a8e697607"],
  };

  for (const alg of AEAD_ALGORITHMS) {
    it(`${alg}: known answer with a fixed key IV`, () => {
      const n = aeadKeyBytes(alg);
      const master = range(0, n);
      const dek = range(0xa0, 0xa0 + n);
      const w = wrapKey(alg, master, dek, range(0x20, 0x2c));
      expect(toHex(w.wrappedKey)).toBe(WRAP_KAT[alg][0]);
      expect(toHex(w.keyTag)).toBe(WRAP_KAT[alg][1]);
      expect(toHex(w.keyIv)).toBe(toHex(range(0x20, 0x2c)));
      expect(w.wrappedKey.length).toBe(n); // same length as the DEK; the tag is stored apart
      expect(unwrapKey(alg, master, w)).toEqual(dek);
    });

    it(`${alg}: round trip with random DEK and key IV; wrong master key or modified fields fail`, () => {
      const master = generateDek(alg);
      const dek = generateDek(alg);
      expect(dek.length).toBe(aeadKeyBytes(alg));
      const w = wrapKey(alg, master, dek);
      expect(w.keyIv.length).toBe(12);
      expect(w.keyTag.length).toBe(16);
      expect(unwrapKey(alg, master, w)).toEqual(dek);
      // Two wraps of the same DEK use different key IVs.
      expect(toHex(wrapKey(alg, master, dek).keyIv)).not.toBe(toHex(w.keyIv));

      const wrongMaster = master.slice();
      wrongMaster[master.length - 1]! ^= 0x10;
      expectDecryptionFailed(thrown(() => unwrapKey(alg, wrongMaster, w)));
      expectDecryptionFailed(thrown(() => unwrapKey(alg, generateDek(alg), w)));
      const flipped = (b: Uint8Array) => {
        const c = b.slice();
        c[0]! ^= 1;
        return c;
      };
      expectDecryptionFailed(thrown(() => unwrapKey(alg, master, { ...w, wrappedKey: flipped(w.wrappedKey) })));
      expectDecryptionFailed(thrown(() => unwrapKey(alg, master, { ...w, keyIv: flipped(w.keyIv) })));
      expectDecryptionFailed(thrown(() => unwrapKey(alg, master, { ...w, keyTag: flipped(w.keyTag) })));
      // Wrong lengths are reported the same way (no oracle).
      expectDecryptionFailed(thrown(() => unwrapKey(alg, master, { ...w, keyIv: w.keyIv.subarray(0, 11) })));
      expectDecryptionFailed(thrown(() => unwrapKey(alg, master, { ...w, wrappedKey: w.wrappedKey.subarray(1) })));
      expectDecryptionFailed(thrown(() => unwrapKey(alg, master, { ...w, keyTag: w.keyTag.subarray(1) })));
    });
  }
});

// ------------------------------------------------------------------------------------------------
// The writer's tensor encryption (encryptTensorData), through real file handles.

describe("tensor encryption as the writer does it", () => {
  const dir = tempDir();
  let fileNo = 0;

  /** Encrypts `pt` with the writer's code path and returns [ciphertext, entry with its tag(s)]. */
  async function encryptWithWriter(
    alg: AeadAlgorithm,
    dek: Uint8Array,
    entry: TensorCryptoEntry,
    pt: Uint8Array,
    chunkBytes: number | undefined,
  ): Promise<Uint8Array> {
    const src = join(dir, `src${fileNo}`);
    const dst = join(dir, `dst${fileNo++}`);
    // Put the tensor at an offset in both files, as in a real safetensors file.
    writeFileSync(src, Buffer.concat([Buffer.alloc(5, 0x55), pt]));
    writeFileSync(dst, Buffer.alloc(3 + pt.length, 0x77));
    const s = await openFile(src, "r");
    const d = await openFile(dst, "r+");
    let reported = 0;
    try {
      await encryptTensorData(s, 5, d, 3, pt.length, alg, dek, entry, chunkBytes, (n) => {
        reported += n;
      });
    } finally {
      await s.close();
      await d.close();
    }
    expect(reported).toBe(pt.length);
    const out = new Uint8Array(readFileSync(dst));
    expect([...out.subarray(0, 3)]).toEqual([0x77, 0x77, 0x77]);
    return out.subarray(3);
  }

  const dummyWrap = { wrappedKey: new Uint8Array(32), keyIv: new Uint8Array(12), keyTag: new Uint8Array(16) };
  const chunked = (baseIv: Uint8Array, tensorBytes: number, chunk: number): TensorCryptoEntry => ({
    scheme: "chunked",
    wrapped: dummyWrap,
    baseIv,
    tags: new Uint8Array(16 * chunkCount(tensorBytes, chunk)),
  });

  // Derived KATs (Python `cryptography` 48.0.0 with an independent implementation of §3.5):
  // DEK = a0 … bf, base_iv = 10×8 ‖ 00 00 00 ff (so chunk 1 carries into the next counter byte),
  // chunk_size 16, plaintext = 00 01 02 … (len bytes).
  const DEK = range(0xa0, 0xc0);
  const BASE_IV = hex("1010101010101010000000ff");
  const V2_AES256: [number, string, string][] = [
    [0, "", "d96a333074a7a8fca5bc115261f864af"],
    [1, "82", "9c398db032657d8cb45eff2d0fe384ca"],
    [15, "8225469a3e0d4093e1aee1f3eda339", "ca35796a217738b62aa7eadf86150d2b"],
    [16, "8225469a3e0d4093e1aee1f3eda339f8", "02839aa7136f3b628f0a95328e1040c5"],
    [17, "8225469a3e0d4093e1aee1f3eda339f81e", "02839aa7136f3b628f0a95328e1040c505d63006c49819ee102631f627093f5c"],
    [
      48,
      "8225469a3e0d4093e1aee1f3eda339f81e2dccd18786cbbff7132f2d620cefe03d29d9ce09071bc51c9cfaf6be850562",
      "02839aa7136f3b628f0a95328e1040c5874f3367eede97fb9dfe4dca034077ae81bc46d70666b278533f7feb242b59dc",
    ],
  ];

  for (const [len, ct, tags] of V2_AES256) {
    it(`v2 aes256gcm, chunk_size 16, ${len} bytes: known ciphertext and tags`, async () => {
      const entry = chunked(BASE_IV, len, 16);
      const out = await encryptWithWriter("aes256gcm", DEK, entry, range(0, len), 16);
      expect(toHex(out)).toBe(ct);
      expect(entry.scheme === "chunked" && toHex(entry.tags)).toBe(tags);
    });
  }

  it("v2 chacha20poly1305, 48 bytes in 3 chunks: known ciphertext and tags", async () => {
    const entry = chunked(BASE_IV, 48, 16);
    const out = await encryptWithWriter("chacha20poly1305", DEK, entry, range(0, 48), 16);
    expect(toHex(out)).toBe("8ec9b5314585cea3f9819143853b626d4354f5f683cfdaf04fefdf92f825161c7ca83b4e6d4f1a6de244d0dbc2e44577");
    expect(entry.scheme === "chunked" && toHex(entry.tags)).toBe(
      "8977597773a5e6d7f06b080a81a1961fa519c72df82ba7dd5684449d99f3f922c5729855093ca385b89b7943626bab4c",
    );
  });

  it("v2 aes128gcm, counter fffffffd: the last chunk uses ffffffff; one more chunk would overflow", async () => {
    const base = hex("1111111111111111fffffffd");
    const entry = chunked(base, 48, 16);
    const out = await encryptWithWriter("aes128gcm", DEK.subarray(0, 16), entry, range(0, 48), 16);
    expect(toHex(out)).toBe("2526f9c56b33d13f7074f2742b525f1c5708eeba8e490b1941f08c8b8290e8c650be41036d53c835f03c5456f67099a4");
    expect(entry.scheme === "chunked" && toHex(entry.tags)).toBe(
      "6826f7b1ded65d7eb269eb3ccaeabae9477c888519a446a7c5fa56cbfd5aca112dc6fd5d339865d8cf5a77c13b476e9a",
    );
    // 49 bytes = 4 chunks: chunk 3 would need counter 2^32.
    await expect(encryptWithWriter("aes128gcm", DEK.subarray(0, 16), chunked(base, 49, 16), range(0, 49), 16)).rejects.toMatchObject({
      code: "ERR_CT_FORMAT",
    });
  });

  it("every chunk is an independent AEAD seal with the derived nonce (checked with seal())", async () => {
    const pt = range(0, 100);
    const entry = chunked(BASE_IV, 100, 7);
    const out = await encryptWithWriter("aes256gcm", DEK, entry, pt, 7);
    for (let i = 0; i < chunkCount(100, 7); i++) {
      const [c, t] = seal("aes256gcm", DEK, chunkNonce(BASE_IV, i), pt.subarray(i * 7, Math.min(100, i * 7 + 7)));
      expect(toHex(out.subarray(i * 7, i * 7 + c.length))).toBe(toHex(c));
      expect(entry.scheme === "chunked" && toHex(entry.tags.subarray(16 * i, 16 * i + 16))).toBe(toHex(t));
    }
  });

  for (const alg of AEAD_ALGORITHMS) {
    it(`${alg}: a ≤ 1-chunk v2 tensor with base_iv X equals v1 with iv X under the same DEK`, async () => {
      const dek = range(0xa0, 0xa0 + aeadKeyBytes(alg));
      const x = hex("1010101010101010000000ff");
      for (const len of [1, 17, 64]) {
        const pt = range(0, len);
        const v2 = chunked(x, len, 64);
        const v1: TensorCryptoEntry = { scheme: "monolithic", wrapped: dummyWrap, iv: x, tag: new Uint8Array(16) };
        const ct2 = await encryptWithWriter(alg, dek, v2, pt, 64);
        const ct1 = await encryptWithWriter(alg, dek, v1, pt, undefined);
        expect(toHex(ct2)).toBe(toHex(ct1));
        expect(v2.scheme === "chunked" && toHex(v2.tags)).toBe(v1.scheme === "monolithic" && toHex(v1.tag));
        if (alg === "aes256gcm" && len === 17) {
          // And it is the derived v1 KAT (Python): 17-byte plaintext 00…10 under iv X.
          expect(toHex(ct1)).toBe("8225469a3e0d4093e1aee1f3eda339f862");
          expect(v1.scheme === "monolithic" && toHex(v1.tag)).toBe("a44931a1b15aed4289f65964803bb101");
        }
      }
    });
  }

  it('v1 empty tensor: no AEAD call, the tag stays empty (the reference writes iv = tag = "")', async () => {
    const entry: TensorCryptoEntry = { scheme: "monolithic", wrapped: dummyWrap, iv: new Uint8Array(0), tag: new Uint8Array(0) };
    const out = await encryptWithWriter("aes256gcm", DEK, entry, new Uint8Array(0), undefined);
    expect(out.length).toBe(0);
    expect(entry.scheme === "monolithic" && entry.tag.length).toBe(0);
  });
});
