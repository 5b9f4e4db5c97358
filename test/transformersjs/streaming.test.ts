// The hook reads a fetched (or cached) container as a stream: the streaming reader (container/memory-reader.ts
// StreamCryptoTensors, through container-weights.ts streamWeights) decrypts each tensor as soon as its bytes
// have arrived and lets the chunks go, so the ciphertext is never held whole; the cache tee (cache-tee.ts)
// writes the same bytes to the container cache without queueing them when one side is slower, and stores
// them only on commit. Here in Node, on a real encrypted file fed chunk by chunk by a source that counts
// what it handed out.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { encryptFile } from "../../plugin/src/container/encrypt-file.js";
import { StreamCryptoTensors } from "../../plugin/src/container/memory-reader.js";
import { webCryptoProvider } from "../../plugin/src/crypto/provider-web.js";
import { CryptoTensorsError } from "../../plugin/src/errors.js";
import { TrustStore } from "../../plugin/src/keys/trust.js";
import { teeToCache } from "../../plugin/src/transformers/cache-tee.js";
import type { ContainerCache } from "../../plugin/src/transformers/container-cache.js";
import { streamWeights } from "../../plugin/src/transformers/container-weights.js";
import { newEncryptionKey, newSigningKey, type PlainTensor, tempDir, writePlainSafetensors } from "../../plugin/test/helpers.js";

const dir = tempDir("ctensors-streaming-");
const key = newEncryptionKey("aes256gcm", "enc-1");
const signKey = newSigningKey("sign-1");
const options = { keys: [key], trust: new TrustStore([signKey]), requireEncrypted: true, provider: webCryptoProvider };
const CHUNK = 16 << 10;
const TENSOR_BYTES = 256 << 10;
const TENSORS = 16;

let container: Uint8Array;
let plain: Map<string, Uint8Array>;

beforeAll(async () => {
  const tensors: PlainTensor[] = Array.from({ length: TENSORS }, (_, i) => ({ name: `w${i}`, dtype: "U8", shape: [TENSOR_BYTES] }));
  const src = join(dir, "plain.safetensors");
  plain = writePlainSafetensors(src, tensors);
  const out = join(dir, "enc.safetensors");
  await encryptFile(src, out, { key, signKey, formatVersion: 2, chunkBytes: 64 << 10 });
  container = new Uint8Array(readFileSync(out));
});

/** A pull source of `bytes` in `size`-byte chunks that records how many bytes it has handed out. */
function countingSource(bytes: Uint8Array, size = CHUNK) {
  const state = { handedOut: 0 };
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(c) {
        if (state.handedOut >= bytes.length) return c.close();
        const chunk = bytes.slice(state.handedOut, state.handedOut + size);
        state.handedOut += chunk.length;
        c.enqueue(chunk);
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, state };
}

const codeOf = async (p: Promise<unknown>) => {
  const err = await p.then(
    () => undefined,
    (e) => e,
  );
  expect(err).toBeInstanceOf(CryptoTensorsError);
  return (err as CryptoTensorsError).code;
};

describe("the streaming reader", () => {
  it("decrypts each tensor as its bytes arrive: never more than one tensor and one chunk of ciphertext ahead", async () => {
    const { stream, state } = countingSource(container);
    const reader = await StreamCryptoTensors.open(stream.getReader(), options);
    // Opening read the header and at most one chunk past it.
    expect(state.handedOut).toBeLessThanOrEqual(reader.headerBytes.length + CHUNK);
    const outs = new Map<string, Uint8Array>();
    let maxAhead = 0;
    let decrypted = reader.headerBytes.length;
    await reader.readAll((t) => {
      // Called when the reader starts on tensor t: every tensor before it is decrypted, so the bytes handed
      // out but not yet in a decrypted tensor are what the reader holds (and what it has copied into t's buffer).
      maxAhead = Math.max(maxAhead, state.handedOut - decrypted);
      decrypted += t.end - t.begin;
      const out = new Uint8Array(t.end - t.begin);
      outs.set(t.name, out);
      return out;
    });
    reader.close();
    expect(maxAhead).toBeLessThanOrEqual(CHUNK);
    expect(maxAhead).toBeLessThan(container.length / 4);
    for (const [name, bytes] of plain) expect(Buffer.from(outs.get(name)!).equals(Buffer.from(bytes)), name).toBe(true);
  });

  it("the first tensor is decrypted before the source has handed out the whole file", async () => {
    const { stream, state } = countingSource(container);
    const reader = await StreamCryptoTensors.open(stream.getReader(), options);
    let handedOutAtSecond = -1;
    const first = new Uint8Array(TENSOR_BYTES);
    await reader.readAll((t) => {
      if (t.name === "w1") {
        handedOutAtSecond = state.handedOut;
        expect(Buffer.from(first).equals(Buffer.from(plain.get("w0")!))).toBe(true); // w0 already decrypted here
      }
      return t.name === "w0" ? first : undefined;
    });
    reader.close();
    expect(handedOutAtSecond).toBeGreaterThan(0);
    expect(handedOutAtSecond).toBeLessThan(container.length / 4);
  });

  it("refuses a truncated file (ERR_CT_FORMAT), a file with trailing bytes, and a failing source (ERR_CT_IO)", async () => {
    const read = async (bytes: Uint8Array) => {
      const reader = await StreamCryptoTensors.open(countingSource(bytes).stream.getReader(), options);
      try {
        await reader.readAll(() => undefined);
      } finally {
        reader.close();
      }
    };
    expect(await codeOf(read(container.subarray(0, container.length - 1)))).toBe("ERR_CT_FORMAT");
    expect(await codeOf(read(new Uint8Array([...container, 0])))).toBe("ERR_CT_FORMAT");
    expect(await codeOf(read(container.subarray(0, 5)))).toBe("ERR_CT_FORMAT");
    let pulls = 0;
    const failing = new ReadableStream<Uint8Array>({
      pull(c) {
        if (pulls++ === 0) c.enqueue(container.slice(0, 100_000));
        else c.error(new Error("connection reset"));
      },
    });
    const reader = await StreamCryptoTensors.open(failing.getReader(), options);
    expect(await codeOf(reader.readAll(() => undefined))).toBe("ERR_CT_IO");
    reader.close();
  });
});

describe("streamWeights", () => {
  it("hashes the whole file as it streams through (a release that lists the container by its sha256)", async () => {
    const weights = await streamWeights(countingSource(container).stream, options);
    const digest = weights.wholeFileSha256();
    const files = new Map([["data", new Uint8Array(TENSOR_BYTES * 2)]]);
    await weights.decryptInto(files, [
      { name: "w3", file: "data", offset: 0, length: TENSOR_BYTES },
      { name: "w3", file: "data", offset: TENSOR_BYTES, length: TENSOR_BYTES }, // a weight used twice
    ]);
    await weights.close();
    expect(Buffer.from(await digest).toString("hex")).toBe(createHash("sha256").update(container).digest("hex"));
    const w3 = Buffer.from(plain.get("w3")!);
    expect(Buffer.from(files.get("data")!.subarray(0, TENSOR_BYTES)).equals(w3)).toBe(true);
    expect(Buffer.from(files.get("data")!.subarray(TENSOR_BYTES)).equals(w3)).toBe(true);
    await expect(weights.wholeFileSha256()).rejects.toThrow(TypeError); // too late: the file went by
  });
});

/** A container cache in memory whose writer reads one chunk each time `drain()` is called. */
function slowCache() {
  const stored = new Map<string, Uint8Array>();
  const deleted: string[] = [];
  let taken = 0;
  let pump: (() => void) | undefined;
  const cache: ContainerCache = {
    get: async () => undefined,
    async put(url, body) {
      const reader = body.getReader();
      const parts: Uint8Array[] = [];
      for (;;) {
        await new Promise<void>((resolve) => (pump = resolve));
        const r = await reader.read();
        if (r.done) break;
        parts.push(r.value);
        taken += r.value.length;
      }
      stored.set(url, new Uint8Array(Buffer.concat(parts)));
    },
    async delete(url) {
      deleted.push(url);
      stored.delete(url);
    },
  };
  return {
    cache,
    stored,
    deleted,
    taken: () => taken,
    drain: () => pump?.(),
  };
}

describe("the cache tee", () => {
  it("the decryption waits for a slow cache: the copy never runs more than its high-water mark ahead; stored on commit", async () => {
    const { stream, state } = countingSource(container);
    const c = slowCache();
    const highWater = 256 << 10;
    const tee = teeToCache(stream, c.cache, "u", highWater);
    const reader = tee.body.getReader();
    let read = 0;
    let maxAhead = 0;
    for (;;) {
      const pending = reader.read();
      // Let the cache take a chunk now and then only: the reading must wait for it.
      let r = await Promise.race([pending, new Promise<undefined>((resolve) => setTimeout(resolve, 5))]);
      while (r === undefined) {
        c.drain();
        r = await Promise.race([pending, new Promise<undefined>((resolve) => setTimeout(resolve, 1))]);
      }
      maxAhead = Math.max(maxAhead, state.handedOut - c.taken());
      if (r.done) break;
      read += r.value.length;
    }
    expect(read).toBe(container.length);
    expect(maxAhead).toBeLessThanOrEqual(highWater + CHUNK);
    expect(maxAhead).toBeLessThan(container.length / 2);
    expect(c.stored.size).toBe(0);
    tee.commit();
    while (!c.stored.has("u")) {
      c.drain();
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    expect(Buffer.from(c.stored.get("u")!).equals(Buffer.from(container))).toBe(true);
  });

  it("abort: the copy fails, nothing is stored and the entry is deleted", async () => {
    const c = slowCache();
    const tee = teeToCache(countingSource(container).stream, c.cache, "u");
    const reader = tee.body.getReader();
    const interval = setInterval(() => c.drain(), 1);
    try {
      for (let r = await reader.read(); !r.done; r = await reader.read());
      await tee.abort(new Error("a tensor failed"));
    } finally {
      clearInterval(interval);
    }
    expect(c.stored.size).toBe(0);
    expect(c.deleted).toEqual(["u"]);
  });
});
