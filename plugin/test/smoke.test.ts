import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CryptoTensorsReader } from "../src/container/reader.js";
import { encryptFile } from "../src/container/encrypt-file.js";
import { TrustStore } from "../src/keys/trust.js";
import { newEncryptionKey, newSigningKey, sampleTensors, tempDir, writePlainSafetensors } from "./helpers.js";

describe("encrypt → open round trip", () => {
  const dir = tempDir();
  for (const version of [1, 2] as const) {
    for (const alg of ["aes256gcm", "aes128gcm", "chacha20poly1305"] as const) {
      it(`v${version} ${alg}`, async () => {
        const plain = join(dir, `p-${version}-${alg}.safetensors`);
        const enc = join(dir, `e-${version}-${alg}.safetensors`);
        const data = writePlainSafetensors(plain, sampleTensors());
        const key = newEncryptionKey(alg);
        const signKey = newSigningKey();
        await encryptFile(plain, enc, { key, signKey, formatVersion: version, chunkBytes: version === 2 ? 100 : undefined });
        const reader = await CryptoTensorsReader.open(enc, { keys: [key], trust: new TrustStore([signKey]) });
        try {
          for (const [name, bytes] of data) expect(Buffer.from(await reader.readTensor(name))).toEqual(Buffer.from(bytes));
          expect(reader.userMetadata()).toEqual(new Map([["format", "pt"]]));
        } finally {
          await reader.close();
        }
      });
    }
  }
});
