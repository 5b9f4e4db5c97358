// The contract between the TypeScript side of the native engine (src/crypto/engine.ts) and the C side
// (native/ctensors_native.c) cannot drift: the compiled addon reports its enums and sizes (layout())
// and they must equal the TypeScript ones; and one job whose task rows carry a distinct value in every
// field shows that the C side reads each field of the row where engine.ts writes it. Needs the addon
// (npm run build): without it the first test fails.

import { createRequire } from "node:module";
import { randomBytes } from "node:crypto";
import { closeSync, openSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { AEAD_ALGORITHMS, aeadKeyBytes, sealInto, NONCE_BYTES, TAG_BYTES, type AeadAlgorithm } from "../src/crypto/aead.js";
import { chunkNonce } from "../src/crypto/chunked.js";
import { ALG_ID, runNative, Scheme, TASK_FIELDS, TaskStatus, type NativeTask } from "../src/crypto/engine.js";
import { tempDir } from "./helpers.js";

interface Layout {
  op: Record<string, number>;
  scheme: Record<string, number>;
  alg: Record<string, number>;
  status: Record<string, number>;
  dst: Record<string, number>;
  keyBytes: Record<string, number>;
  taskFields: number;
  tagBytes: number;
  nonceBytes: number;
  chunkBits: number;
  lengthBits: number;
}

function addonLayout(): Layout {
  const addon = createRequire(import.meta.url)("node-gyp-build")(join(import.meta.dirname, "..")) as { layout(): Layout };
  return addon.layout();
}

/** A TypeScript numeric enum as {lowercased name: value}. */
function enumValues(e: Record<string, string | number>): Record<string, number> {
  return Object.fromEntries(
    Object.entries(e)
      .filter(([, v]) => typeof v === "number")
      .map(([k, v]) => [k.toLowerCase(), v as number]),
  );
}

describe("native engine layout (asked from the compiled addon)", () => {
  const layout = addonLayout();

  it("enums: scheme, algorithm and task status have the same names and values on both sides", () => {
    expect(layout.scheme).toEqual(enumValues(Scheme as unknown as Record<string, string | number>));
    expect(layout.status).toEqual(enumValues(TaskStatus as unknown as Record<string, string | number>));
    expect(layout.alg).toEqual(ALG_ID);
    expect(Object.keys(layout.alg).sort()).toEqual([...AEAD_ALGORITHMS].sort());
    // engine.ts passes 0 = decrypt / 1 = encrypt and destination kinds 0 buffer, 1 map, 2 pwrite.
    expect(layout.op).toEqual({ decrypt: 0, encrypt: 1 });
    expect(layout.dst).toEqual({ buffer: 0, map: 1, pwrite: 2 });
  });

  it("sizes: fields per task row, tag, nonce, key lengths; 64-bit lengths and chunk sizes in C", () => {
    expect(layout.taskFields).toBe(TASK_FIELDS);
    expect(layout.tagBytes).toBe(TAG_BYTES);
    expect(layout.nonceBytes).toBe(NONCE_BYTES);
    for (const alg of AEAD_ALGORITHMS) expect(layout.keyBytes[alg], alg).toBe(aeadKeyBytes(alg));
    // JS numbers carry integers up to 2^53: the C fields must hold at least that.
    expect(layout.lengthBits).toBeGreaterThanOrEqual(53);
    expect(layout.chunkBits).toBeGreaterThanOrEqual(53);
  });
});

describe("native engine task rows (every field read where engine.ts writes it)", () => {
  it("source, offsets, length, scheme, algorithm, chunk size, key and tag offsets", async () => {
    const dir = tempDir("ct-native-layout-");
    const a = new Uint8Array(randomBytes(64));
    const b = new Uint8Array(randomBytes(64));
    writeFileSync(join(dir, "a"), a);
    writeFileSync(join(dir, "b"), b);
    const fds = [openSync(join(dir, "a"), "r"), openSync(join(dir, "b"), "r")];
    try {
      const seal = (alg: AeadAlgorithm, key: Uint8Array, iv: Uint8Array, plain: Uint8Array, chunk: number | undefined) => {
        const ct = new Uint8Array(plain.length);
        if (chunk === undefined) return { ct, tags: sealInto(alg, key, iv, plain, ct) };
        const n = Math.ceil(plain.length / chunk);
        const tags = new Uint8Array(n * TAG_BYTES);
        for (let i = 0; i < n; i++) {
          const s = i * chunk;
          const e = Math.min(plain.length, s + chunk);
          tags.set(sealInto(alg, key, chunkNonce(iv, i), plain.subarray(s, e), ct.subarray(s, e)), i * TAG_BYTES);
        }
        return { ct, tags };
      };
      // Task 0: plain copy of b[3..8) to 100. Task 1: v1 ChaCha of a[10..30) to 5 (key and tag at offset 0).
      // Task 2: v2 AES-128 of b[20..47) in 7-byte chunks to 40 (its key and tags after task 1's).
      const k1 = new Uint8Array(randomBytes(32));
      const iv1 = new Uint8Array(randomBytes(12));
      const k2 = new Uint8Array(randomBytes(16));
      const iv2 = new Uint8Array(randomBytes(12));
      iv2[8] = 0;
      const e1 = seal("chacha20poly1305", k1, iv1, a.subarray(10, 30), undefined);
      const e2 = seal("aes128gcm", k2, iv2, b.subarray(20, 47), 7);
      const tasks: NativeTask[] = [
        {
          source: 1,
          srcOffset: 3,
          length: 5,
          dstOffset: 100,
          scheme: Scheme.Plain,
          alg: "aes256gcm",
          key: new Uint8Array(0),
          iv: new Uint8Array(12),
          tags: new Uint8Array(0),
          chunkBytes: 0,
        },
        {
          source: 0,
          srcOffset: 10,
          length: 20,
          dstOffset: 5,
          scheme: Scheme.Monolithic,
          alg: "chacha20poly1305",
          key: k1,
          iv: iv1,
          tags: new Uint8Array(TAG_BYTES),
          chunkBytes: 0,
        },
        {
          source: 1,
          srcOffset: 20,
          length: 27,
          dstOffset: 40,
          scheme: Scheme.Chunked,
          alg: "aes128gcm",
          key: k2,
          iv: iv2,
          tags: new Uint8Array(4 * TAG_BYTES),
          chunkBytes: 7,
        },
      ];
      const out = new Uint8Array(128);
      const statuses = await runNative("encrypt", fds, { kind: "buffer", buffer: out }, tasks);
      expect([...statuses]).toEqual([TaskStatus.Ok, TaskStatus.Ok, TaskStatus.Ok]);
      expect(out.subarray(100, 105)).toEqual(b.subarray(3, 8));
      expect(out.subarray(5, 25)).toEqual(e1.ct);
      expect(tasks[1]!.tags).toEqual(e1.tags);
      expect(out.subarray(40, 67)).toEqual(e2.ct);
      expect(tasks[2]!.tags).toEqual(e2.tags);
      // Nothing else was written.
      const untouched = [...out.keys()].filter((i) => !(i >= 100 && i < 105) && !(i >= 5 && i < 25) && !(i >= 40 && i < 67));
      expect(untouched.every((i) => out[i] === 0)).toBe(true);
    } finally {
      for (const fd of fds) closeSync(fd);
    }
  });
});
