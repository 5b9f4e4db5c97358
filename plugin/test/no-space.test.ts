// A full destination is told apart from other I/O errors: the native engine's writes that fail with
// ENOSPC (here: /dev/full, which fails every write so) are ERR_CT_IO with an ENOSPC cause and a message
// that names the tensor and the reason, never a bare engine status. And reserveFileSpace allocates a
// file's blocks up front. Needs the native engine (npm run build).

import { closeSync, fstatSync, openSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encryptFile } from "../src/container/encrypt-file.js";
import { CryptoTensorsReader, readTensorsInto } from "../src/container/reader.js";
import { engineName, reserveFileSpace } from "../src/crypto/engine.js";
import { CryptoTensorsError } from "../src/errors.js";
import { publicKeyOf } from "../src/keys/jwk.js";
import { TrustStore } from "../src/keys/trust.js";
import { newEncryptionKey, newSigningKey, tempDir, writePlainSafetensors } from "./helpers.js";

const dir = tempDir("ct-nospace-");
const key = newEncryptionKey();
const signKey = newSigningKey("nospace-signer");
let reader: CryptoTensorsReader;

beforeAll(async () => {
  writePlainSafetensors(join(dir, "m.safetensors"), [{ name: "w16", dtype: "F32", shape: [256, 256] }]);
  await encryptFile(join(dir, "m.safetensors"), join(dir, "m.enc.safetensors"), { key, signKey });
  reader = await CryptoTensorsReader.open(join(dir, "m.enc.safetensors"), { keys: [key], trust: new TrustStore([publicKeyOf(signKey)]) });
});
afterAll(async () => reader?.close());

describe("a full destination", () => {
  it("the native engine's ENOSPC is ERR_CT_IO with an ENOSPC cause, naming the tensor", async () => {
    expect(engineName()).toBe("native");
    const fd = openSync("/dev/full", "w");
    try {
      const err = await readTensorsInto([{ reader, name: "w16", offset: 0 }], { kind: "file", fd, bytes: 0 }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(CryptoTensorsError);
      expect((err as CryptoTensorsError).code).toBe("ERR_CT_IO");
      expect((err as Error).message).toBe('no space left on the destination while writing tensor "w16" (ENOSPC)');
      expect(((err as Error).cause as NodeJS.ErrnoException).code).toBe("ENOSPC");
    } finally {
      closeSync(fd);
    }
  });

  it("reserveFileSpace allocates a file's blocks now", async () => {
    const fd = openSync(join(dir, "reserved"), "w+");
    try {
      expect(await reserveFileSpace(fd, 1 << 20)).toBe(true);
      const st = fstatSync(fd);
      expect(st.size).toBe(1 << 20);
      expect(st.blocks * 512).toBeGreaterThanOrEqual(1 << 20);
    } finally {
      closeSync(fd);
    }
  });
});
