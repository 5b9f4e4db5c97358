// The native AEAD engine (plugin/native) against node:crypto, byte for byte: every algorithm, v1 and v2,
// empty tensors, sizes around chunk and piece (256 KiB) boundaries, every source/destination mode,
// wrong tags (the destination range is zeroed, other tasks are untouched), the IV-counter overflow,
// and encryption. This file always uses the native engine (CTENSORS_ENGINE=js runs included): the
// addon must be built (npm run build), otherwise the first test fails.

import { randomBytes } from "node:crypto";
import { closeSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AEAD_ALGORITHMS, aeadKeyBytes, openInto, sealInto, TAG_BYTES, type AeadAlgorithm } from "../src/crypto/aead.js";
import { chunkCount, chunkNonce } from "../src/crypto/chunked.js";
import { engineName, runNative, Scheme, TaskStatus, type NativeDestination, type NativeTask } from "../src/crypto/engine.js";
import { tempDir } from "./helpers.js";

const dir = tempDir("ctensors-native-");
const saved = { engine: process.env.CTENSORS_ENGINE, src: process.env.CTENSORS_NATIVE_SRC, dst: process.env.CTENSORS_NATIVE_DST };
beforeAll(() => {
  process.env.CTENSORS_ENGINE = "native";
});
afterAll(() => {
  for (const [k, v] of [
    ["CTENSORS_ENGINE", saved.engine],
    ["CTENSORS_NATIVE_SRC", saved.src],
    ["CTENSORS_NATIVE_DST", saved.dst],
  ] as const) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

const PIECE = 256 * 1024;

/** What node:crypto makes of `plain`: ciphertext and tags, v1 (chunk undefined) or v2. */
function sealJs(
  alg: AeadAlgorithm,
  key: Uint8Array,
  iv: Uint8Array,
  plain: Uint8Array,
  chunk: number | undefined,
): { ct: Uint8Array; tags: Uint8Array } {
  const ct = new Uint8Array(plain.length);
  if (chunk === undefined) return { ct, tags: sealInto(alg, key, iv, plain, ct) };
  const n = chunkCount(plain.length, chunk);
  const tags = new Uint8Array(n * TAG_BYTES);
  for (let i = 0; i < n; i++) {
    const a = i * chunk;
    const b = Math.min(plain.length, a + chunk);
    tags.set(sealInto(alg, key, chunkNonce(iv, i), plain.subarray(a, b), ct.subarray(a, b)), i * TAG_BYTES);
  }
  return { ct, tags };
}

interface Case {
  alg: AeadAlgorithm;
  length: number;
  chunk: number | undefined;
  key: Uint8Array;
  iv: Uint8Array;
  plain: Uint8Array;
  ct: Uint8Array;
  tags: Uint8Array;
}

function makeCase(alg: AeadAlgorithm, length: number, chunk: number | undefined): Case {
  const key = new Uint8Array(randomBytes(aeadKeyBytes(alg)));
  const iv = new Uint8Array(randomBytes(12));
  iv[8] = 0; // keep the chunk counter far from overflow
  const plain = new Uint8Array(randomBytes(length));
  return { alg, length, chunk, key, iv, plain, ...sealJs(alg, key, iv, plain, chunk) };
}

/** Writes the cases' ciphertexts one after another (after a 13-byte prefix, so offsets are unaligned) into a file. */
function sourceFile(name: string, cases: Case[]): { path: string; offsets: number[] } {
  const offsets: number[] = [];
  let at = 13;
  for (const c of cases) {
    offsets.push(at);
    at += c.length;
  }
  const bytes = new Uint8Array(at);
  cases.forEach((c, i) => bytes.set(c.ct, offsets[i]!));
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return { path, offsets };
}

function tasksFor(cases: Case[], offsets: number[], dstOffsets: number[], tags = cases.map((c) => c.tags)): NativeTask[] {
  return cases.map((c, i) => ({
    source: 0,
    srcOffset: offsets[i]!,
    length: c.length,
    dstOffset: dstOffsets[i]!,
    alg: c.alg,
    key: c.key,
    iv: c.iv,
    tags: tags[i]!,
    scheme: c.chunk === undefined ? Scheme.Monolithic : Scheme.Chunked,
    chunkBytes: c.chunk ?? 0,
  }));
}

/** Destination offsets: 64-byte aligned, one after another; returns them and the total. */
function packed(cases: Case[]): { offsets: number[]; total: number } {
  const offsets: number[] = [];
  let at = 0;
  for (const c of cases) {
    offsets.push(at);
    at = Math.ceil((at + c.length) / 64) * 64 + 64;
  }
  return { offsets, total: at };
}

type Mode = { name: string; src: "map" | "pread"; dst: "buffer" | "pwrite" | "map" };
const MODES: Mode[] = [
  { name: "pread → buffer", src: "pread", dst: "buffer" },
  { name: "pread → file (pwrite)", src: "pread", dst: "pwrite" },
  { name: "map → file (mapped)", src: "map", dst: "map" },
  { name: "map → buffer", src: "map", dst: "buffer" },
];

/** Runs a decrypt job in `mode` and returns the statuses and the destination's bytes. */
async function decryptIn(
  mode: Mode,
  path: string,
  tasks: NativeTask[],
  total: number,
  fill = 0xa5,
): Promise<{ statuses: Uint8Array; out: Uint8Array }> {
  process.env.CTENSORS_NATIVE_SRC = mode.src;
  process.env.CTENSORS_NATIVE_DST = mode.dst === "map" ? "map" : "pwrite";
  const src = openSync(path, "r");
  try {
    if (mode.dst === "buffer") {
      const out = new Uint8Array(total).fill(fill);
      const statuses = await runNative("decrypt", [src], { kind: "buffer", buffer: out }, tasks);
      return { statuses, out };
    }
    const dstPath = join(dir, `dst-${randomBytes(4).toString("hex")}`);
    writeFileSync(dstPath, new Uint8Array(total).fill(fill));
    const fd = openSync(dstPath, "r+");
    try {
      const dst: NativeDestination = { kind: "file", fd, bytes: total };
      const statuses = await runNative("decrypt", [src], dst, tasks);
      return { statuses, out: new Uint8Array(readFileSync(dstPath)) };
    } finally {
      closeSync(fd);
    }
  } finally {
    closeSync(src);
  }
}

it("the native engine is built and selected (run `npm run build` with gcc installed)", () => {
  expect(engineName()).toBe("native");
});

const SIZES: [string, number, number | undefined][] = [
  ["v2 empty tensor (one tag over nothing)", 0, 1000],
  ["v2 1 byte", 1, 1000],
  ["v2 chunk − 1", 999, 1000],
  ["v2 exactly one chunk", 1000, 1000],
  ["v2 chunk + 1", 1001, 1000],
  ["v2 3 chunks + 17 bytes", 3017, 1000],
  ["v2 one 2 MiB-chunk tensor spanning pieces, unaligned", 2 * PIECE + 12345, 2 * 1024 * 1024],
  ["v2 chunk larger than a piece, several chunks", 3 * (PIECE + 7) + 5, PIECE + 7],
  ["v1 small", 33, undefined],
  ["v1 spanning several pieces", 3 * PIECE + 1, undefined],
];

describe.each(MODES)("decrypt, $name", (mode) => {
  for (const alg of AEAD_ALGORITHMS) {
    it(`${alg}: every size class decrypts to the plaintext in one job`, async () => {
      const cases = SIZES.map(([, length, chunk]) => makeCase(alg, length, chunk));
      const { path, offsets } = sourceFile(`src-${alg}-${mode.src}-${mode.dst}`, cases);
      const dst = packed(cases);
      const { statuses, out } = await decryptIn(mode, path, tasksFor(cases, offsets, dst.offsets), dst.total);
      expect([...statuses]).toEqual(cases.map(() => TaskStatus.Ok));
      cases.forEach((c, i) => {
        expect(Buffer.from(out.subarray(dst.offsets[i]!, dst.offsets[i]! + c.length)).equals(c.plain), SIZES[i]![0]).toBe(true);
        // bytes between tensors are not touched
        const end = dst.offsets[i]! + c.length;
        expect(out[end]).toBe(0xa5);
      });
    });
  }

  it("a wrong tag fails only its task, whose range is zeroed; the others decrypt", async () => {
    const cases = [makeCase("aes256gcm", 5000, 1000), makeCase("aes256gcm", 3 * PIECE, undefined), makeCase("aes256gcm", 4321, 1000)];
    const { path, offsets } = sourceFile(`src-badtag-${mode.src}-${mode.dst}`, cases);
    const dst = packed(cases);
    const tags = cases.map((c) => c.tags.slice());
    tags[0]![3 * TAG_BYTES + 5]! ^= 1; // chunk 3 of 5
    tags[1]![0]! ^= 0x80; // the v1 tag
    const { statuses, out } = await decryptIn(mode, path, tasksFor(cases, offsets, dst.offsets, tags), dst.total);
    expect([...statuses]).toEqual([TaskStatus.Auth, TaskStatus.Auth, TaskStatus.Ok]);
    for (const i of [0, 1]) {
      expect(
        out.subarray(dst.offsets[i]!, dst.offsets[i]! + cases[i]!.length).every((b) => b === 0),
        `task ${i} zeroed`,
      ).toBe(true);
    }
    expect(Buffer.from(out.subarray(dst.offsets[2]!, dst.offsets[2]! + cases[2]!.length)).equals(cases[2]!.plain)).toBe(true);
  });

  it("modified ciphertext (last byte of a v2 tensor) fails and is zeroed", async () => {
    const c = makeCase("chacha20poly1305", 2500, 1000);
    c.ct[c.length - 1]! ^= 1;
    const { path, offsets } = sourceFile(`src-badct-${mode.src}-${mode.dst}`, [c]);
    const { statuses, out } = await decryptIn(mode, path, tasksFor([c], offsets, [64]), 64 + 2560);
    expect(statuses[0]).toBe(TaskStatus.Auth);
    expect(out.subarray(64, 64 + c.length).every((b) => b === 0)).toBe(true);
    expect(out[0]).toBe(0xa5);
  });
});

describe("decrypt, edge cases", () => {
  const mode = MODES[0]!;

  it("the chunk counter may reach 0xffffffff but not pass it (status Counter, range zeroed)", async () => {
    const ok = makeCase("aes256gcm", 0, 10);
    ok.iv.set([0xff, 0xff, 0xff, 0xfd], 8); // chunks 0..2 use counters …fd, …fe, …ff
    ok.plain = new Uint8Array(randomBytes(30));
    ok.length = 30;
    Object.assign(ok, sealJs("aes256gcm", ok.key, ok.iv, ok.plain, 10));
    const over = { ...ok, length: 31, plain: new Uint8Array(31), ct: new Uint8Array(31), tags: new Uint8Array(4 * TAG_BYTES) };
    const { path, offsets } = sourceFile("src-counter", [ok, over]);
    const { statuses, out } = await decryptIn(mode, path, tasksFor([ok, over], offsets, [0, 64]), 128);
    expect([...statuses]).toEqual([TaskStatus.Ok, TaskStatus.Counter]);
    expect(Buffer.from(out.subarray(0, 30)).equals(ok.plain)).toBe(true);
    expect(out.subarray(64, 95).every((b) => b === 0)).toBe(true);
  });

  it("an empty v2 tensor's tag is verified (a wrong one fails)", async () => {
    const c = makeCase("aes128gcm", 0, 1000);
    const bad = c.tags.slice();
    bad[0]! ^= 1;
    const { path, offsets } = sourceFile("src-empty", [c, c]);
    const { statuses } = await decryptIn(mode, path, tasksFor([c, c], offsets, [0, 0], [c.tags, bad]), 64);
    expect([...statuses]).toEqual([TaskStatus.Ok, TaskStatus.Auth]);
  });

  it("plain (unencrypted) tasks are copied as they are, also in slices larger than 8 MiB", async () => {
    const plain = new Uint8Array(randomBytes(9 * 1024 * 1024 + 3));
    const path = join(dir, "src-plain");
    writeFileSync(path, plain);
    const task: NativeTask = {
      source: 0,
      srcOffset: 0,
      length: plain.length,
      dstOffset: 64,
      scheme: Scheme.Plain,
      alg: "aes256gcm",
      key: new Uint8Array(0),
      iv: new Uint8Array(12),
      tags: new Uint8Array(0),
      chunkBytes: 0,
    };
    for (const m of [MODES[0]!, MODES[1]!]) {
      const { statuses, out } = await decryptIn(m, path, [task], plain.length + 64);
      expect(statuses[0]).toBe(TaskStatus.Ok);
      expect(Buffer.from(out.subarray(64)).equals(plain)).toBe(true);
    }
  });

  it("a task beyond the end of its source file rejects the job before anything is written", async () => {
    const c = makeCase("aes256gcm", 100, 1000);
    const { path } = sourceFile("src-short", [c]);
    await expect(decryptIn(mode, path, tasksFor([c], [50], [0]), 128)).rejects.toThrow(/beyond the end of its source/);
  });

  it("a destination too small is a TypeError (nothing runs)", async () => {
    const c = makeCase("aes256gcm", 100, 1000);
    const { path, offsets } = sourceFile("src-small-dst", [c]);
    await expect(decryptIn(mode, path, tasksFor([c], offsets, [0]), 99)).rejects.toThrow(/beyond the destination/);
  });

  it("many small tensors of several algorithms in one job on the pool", async () => {
    const cases = Array.from({ length: 200 }, (_, i) => makeCase(AEAD_ALGORITHMS[i % 3]!, (i * 37) % 700, i % 2 ? 64 : undefined));
    const { path, offsets } = sourceFile("src-many", cases);
    const dst = packed(cases);
    const { statuses, out } = await decryptIn(mode, path, tasksFor(cases, offsets, dst.offsets), dst.total);
    expect(statuses.every((s) => s === TaskStatus.Ok)).toBe(true);
    cases.forEach((c, i) => expect(Buffer.from(out.subarray(dst.offsets[i]!, dst.offsets[i]! + c.length)).equals(c.plain)).toBe(true));
  });
});

describe("encrypt", () => {
  for (const alg of AEAD_ALGORITHMS) {
    it(`${alg}: ciphertext and tags equal node:crypto's, v1 and v2, and decrypt back`, async () => {
      const cases = SIZES.filter(([, length]) => length > 0).map(([, length, chunk]) => makeCase(alg, length, chunk));
      // the source holds the plaintexts
      const offsets: number[] = [];
      let at = 7;
      for (const c of cases) {
        offsets.push(at);
        at += c.length;
      }
      const src = new Uint8Array(at);
      cases.forEach((c, i) => src.set(c.plain, offsets[i]!));
      const srcPath = join(dir, `enc-src-${alg}`);
      writeFileSync(srcPath, src);
      const dstPath = join(dir, `enc-dst-${alg}`);
      writeFileSync(dstPath, new Uint8Array(0));
      const tags = cases.map((c) => new Uint8Array(c.tags.length));
      const tasks = tasksFor(cases, offsets, offsets, tags);
      const sfd = openSync(srcPath, "r");
      const dfd = openSync(dstPath, "r+");
      try {
        process.env.CTENSORS_NATIVE_SRC = "pread";
        const statuses = await runNative("encrypt", [sfd], { kind: "file", fd: dfd, bytes: 0 }, tasks);
        expect(statuses.every((s) => s === TaskStatus.Ok)).toBe(true);
      } finally {
        closeSync(sfd);
        closeSync(dfd);
      }
      const written = readFileSync(dstPath);
      cases.forEach((c, i) => {
        expect(Buffer.from(written.subarray(offsets[i]!, offsets[i]! + c.length)).equals(c.ct)).toBe(true);
        expect(Buffer.from(tags[i]!).equals(c.tags)).toBe(true);
        if (c.chunk === undefined) {
          const back = new Uint8Array(c.length);
          openInto(alg, c.key, c.iv, written.subarray(offsets[i]!, offsets[i]! + c.length), tags[i]!, back);
          expect(Buffer.from(back).equals(c.plain)).toBe(true);
        }
      });
    });
  }
});

describe("engine selection and cross-engine files", () => {
  const withEngine = async <T>(engine: string, fn: () => Promise<T>): Promise<T> => {
    const before = process.env.CTENSORS_ENGINE;
    process.env.CTENSORS_ENGINE = engine;
    try {
      return await fn();
    } finally {
      if (before === undefined) delete process.env.CTENSORS_ENGINE;
      else process.env.CTENSORS_ENGINE = before;
    }
  };

  it("CTENSORS_ENGINE=js selects node:crypto; an unknown value is a usage error", async () => {
    await withEngine("js", async () => expect(engineName()).toBe("js"));
    await withEngine("auto", async () => expect(engineName()).toBe("native"));
    await withEngine("fast", async () => expect(() => engineName()).toThrow(expect.objectContaining({ code: "ERR_CT_USAGE" })));
  });

  for (const version of [1, 2] as const) {
    for (const alg of AEAD_ALGORITHMS) {
      it(`v${version} ${alg}: a file encrypted by either engine reads back exactly with both (readTensor and readTensorsInto)`, async () => {
        const { encryptFile } = await import("../src/container/encrypt-file.js");
        const { CryptoTensorsReader, readTensorsInto } = await import("../src/container/reader.js");
        const { TrustStore } = await import("../src/keys/trust.js");
        const { newEncryptionKey, newSigningKey, writePlainSafetensors } = await import("./helpers.js");
        const key = newEncryptionKey(alg, "enc-x");
        const signKey = newSigningKey("sign-x");
        const plainPath = join(dir, `x-plain-${version}-${alg}.safetensors`);
        const data = writePlainSafetensors(plainPath, [
          { name: "big", dtype: "BF16", shape: [3, 700_001] }, // 4.2 MB: v2 chunks of 1.5 MB, the last one partial
          { name: "small", dtype: "F32", shape: [5] },
          { name: "empty", dtype: "F32", shape: [0] },
          { name: "odd", dtype: "U8", shape: [1_048_577] },
        ]);
        for (const writer of ["js", "native"]) {
          const encPath = join(dir, `x-enc-${version}-${alg}-${writer}.safetensors`);
          await withEngine(writer, () =>
            encryptFile(plainPath, encPath, { key, signKey, formatVersion: version, chunkBytes: version === 2 ? 1_500_000 : undefined }),
          );
          for (const readerEngine of ["js", "native"]) {
            await withEngine(readerEngine, async () => {
              const reader = await CryptoTensorsReader.open(encPath, { keys: [key], trust: new TrustStore([signKey]) });
              try {
                for (const [name, bytes] of data)
                  expect(Buffer.from(await reader.readTensor(name)).equals(bytes), `${writer}→${readerEngine} ${name}`).toBe(true);
                if (readerEngine === "native") {
                  const names = [...data.keys()];
                  const offsets = names.map((_, i) => i * 4_300_032);
                  const out = new Uint8Array(names.length * 4_300_032);
                  await readTensorsInto(
                    names.map((name, i) => ({ reader, name, offset: offsets[i]! })),
                    { kind: "buffer", buffer: out },
                  );
                  names.forEach((name, i) =>
                    expect(Buffer.from(out.subarray(offsets[i]!, offsets[i]! + data.get(name)!.length)).equals(data.get(name)!)).toBe(true),
                  );
                }
              } finally {
                await reader.close();
              }
            });
          }
        }
      });
    }
  }
});

it("close() waits for a native read of the same reader still in flight (the fd stays valid for it)", async () => {
  const { encryptFile } = await import("../src/container/encrypt-file.js");
  const { CryptoTensorsReader } = await import("../src/container/reader.js");
  const { TrustStore } = await import("../src/keys/trust.js");
  const { newEncryptionKey, newSigningKey, writePlainSafetensors } = await import("./helpers.js");
  const key = newEncryptionKey("aes256gcm", "enc-c");
  const signKey = newSigningKey("sign-c");
  const plainPath = join(dir, "close-plain.safetensors");
  const data = writePlainSafetensors(plainPath, [{ name: "w", dtype: "U8", shape: [24 * 1024 * 1024] }]);
  const encPath = join(dir, "close-enc.safetensors");
  await encryptFile(plainPath, encPath, { key, signKey });
  const reader = await CryptoTensorsReader.open(encPath, { keys: [key], trust: new TrustStore([signKey]) });
  const out = new Uint8Array(24 * 1024 * 1024);
  const read = reader.readTensorInto("w", out);
  await new Promise((resolve) => setImmediate(resolve)); // the job is queued on the pool
  await reader.close();
  await read;
  expect(Buffer.from(out).equals(data.get("w")!)).toBe(true);
});

describe("decrypt into a fresh buffer (the engine populates its pages before writing them)", () => {
  // A buffer of this size is a fresh anonymous mapping whose pages nothing has touched yet, so the
  // engine's MADV_POPULATE_WRITE path runs; with CTENSORS_NATIVE_POPULATE=0 it does not. Either way the
  // bytes must be the plaintext, and bytes outside the tasks (zero, or set before the job) unchanged.
  const MiB = 1024 * 1024;
  for (const populate of ["1", "0"]) {
    it(`length not a multiple of 2 MiB, misaligned start offsets, populate ${populate}`, async () => {
      const saved = process.env.CTENSORS_NATIVE_POPULATE;
      process.env.CTENSORS_NATIVE_POPULATE = populate;
      process.env.CTENSORS_NATIVE_SRC = "pread";
      try {
        const cases = [
          makeCase("aes256gcm", 5 * MiB + 12345, 2 * MiB),
          makeCase("chacha20poly1305", 3 * PIECE + 77, undefined),
          makeCase("aes128gcm", 2 * MiB - 3, 2 * MiB),
          makeCase("aes256gcm", 4 * MiB + 1, PIECE + 7),
        ];
        const { path, offsets } = sourceFile(`src-fresh-${populate}`, cases);
        const dstOffsets: number[] = [];
        let at = 4099; // not page- or 2 MiB-aligned
        for (const c of cases) {
          dstOffsets.push(at);
          at += c.length + 4096 + 333;
        }
        const backing = new Uint8Array(at + 2 * MiB + 555); // fresh: never written
        const out = backing.subarray(777); // the destination itself starts at a misaligned address
        const sentinels = dstOffsets.map((o, i) => o + cases[i]!.length + 100);
        for (const s of sentinels) out[s] = 0x5a; // touched before the job, between tasks
        const src = openSync(path, "r");
        let statuses: Uint8Array;
        try {
          statuses = await runNative("decrypt", [src], { kind: "buffer", buffer: out }, tasksFor(cases, offsets, dstOffsets));
        } finally {
          closeSync(src);
        }
        expect([...statuses]).toEqual(cases.map(() => TaskStatus.Ok));
        const expected = new Uint8Array(backing.length);
        cases.forEach((c, i) => expected.set(c.plain, 777 + dstOffsets[i]!));
        for (const s of sentinels) expected[777 + s] = 0x5a;
        expect(Buffer.from(backing).equals(expected)).toBe(true);
      } finally {
        if (saved === undefined) delete process.env.CTENSORS_NATIVE_POPULATE;
        else process.env.CTENSORS_NATIVE_POPULATE = saved;
      }
    });
  }
});
