// Child: where encryptFile's time goes, piece by piece, with the same building blocks and sizes.
// usage: node bench/ops/breakdown.mjs PLAIN SCRATCH_FILE [CRYPTO_MIB]
//   read          FileHandle.read of PLAIN in 16 MiB pieces (page cache warm) — encryptFile's reads
//   sealInto      the package's sealInto over CRYPTO_MIB (default 256) in 2 MiB chunks, in place — its AEAD path
//   sealInto-hot  the same on one 2 MiB buffer over and over (cache-hot, as openssl speed measures)
//   update-64k    one cipher, update() in 64 KiB slices of a hot 2 MiB buffer (small outputs: shows
//                 whether the per-update output allocation, not the AES, is what costs)
//   openInto      the package's openInto over CRYPTO_MIB in place, 2 MiB chunks — the reader's AEAD path
//   write, fsync  FileHandle.write of PLAIN's size from memory in 16 MiB pieces, then fsync
// AEAD rows: the median of 3 interleaved rounds. Each part reports seconds, bytes, CPU and minor faults.
import { createCipheriv, randomFillSync, randomBytes } from "node:crypto";
import { open, rm, stat } from "node:fs/promises";
import { args, begin, finish } from "./_common.mjs";

const [plain, scratch, cryptoMibArg] = args;
const aead = await import(new URL("../../plugin/dist/crypto/aead.js", import.meta.url).href);
const CHUNK = 2 * 1024 * 1024;
const PIECE = 16 * 1024 * 1024;
const cryptoBytes = Number(cryptoMibArg ?? 256) * 1024 * 1024;
const key = randomBytes(32);
const iv = randomBytes(12);
const parts = {};
const measure = async (name, bytes, fn) => {
  const u0 = process.resourceUsage();
  const t0 = performance.now();
  await fn();
  const seconds = (performance.now() - t0) / 1000;
  const u1 = process.resourceUsage();
  const sample = {
    seconds,
    bytes,
    userSeconds: (u1.userCPUTime - u0.userCPUTime) / 1e6,
    sysSeconds: (u1.systemCPUTime - u0.systemCPUTime) / 1e6,
    minorFaults: u1.minorPageFault - u0.minorPageFault,
  };
  parts[name] ??= { samples: [] };
  parts[name].samples.push(sample);
};

const probe = begin();
const { size } = await stat(plain);
const piece = Buffer.allocUnsafe(PIECE);

await measure("read", size, async () => {
  const fh = await open(plain, "r");
  try {
    for (let pos = 0; pos < size; ) {
      const { bytesRead } = await fh.read(piece, 0, PIECE, pos);
      if (!bytesRead) break;
      pos += bytesRead;
    }
  } finally {
    await fh.close();
  }
});

const buf = randomFillSync(Buffer.allocUnsafe(cryptoBytes));
const hot = buf.subarray(0, CHUNK);
const tags = [];
const SLICE = 64 * 1024;
const aeadParts = {
  sealInto() {
    tags.length = 0;
    for (let off = 0; off < cryptoBytes; off += CHUNK) {
      const part = buf.subarray(off, off + CHUNK);
      tags.push(aead.sealInto("aes256gcm", key, iv, part, part));
    }
  },
  openInto() {
    for (let off = 0, i = 0; off < cryptoBytes; off += CHUNK, i++) {
      const part = buf.subarray(off, off + CHUNK);
      aead.openInto("aes256gcm", key, iv, part, tags[i], part);
    }
  },
  "sealInto-hot"() {
    for (let off = 0; off < cryptoBytes; off += CHUNK) aead.sealInto("aes256gcm", key, iv, hot, hot);
  },
  "update-64k"() {
    const c = createCipheriv("aes-256-gcm", key, iv, { authTagLength: 16 });
    for (let off = 0; off < cryptoBytes; off += SLICE) c.update(hot.subarray(off % CHUNK, (off % CHUNK) + SLICE));
    c.final();
  },
};
aead.sealInto("aes256gcm", key, iv, hot, hot); // warm-up
for (let round = 0; round < 3; round++) {
  for (const [name, fn] of Object.entries(aeadParts)) await measure(name, cryptoBytes, fn);
}

randomFillSync(piece);
const fh = await open(scratch, "w", 0o600);
try {
  await measure("write", size, async () => {
    for (let pos = 0; pos < size; pos += PIECE) {
      const n = Math.min(PIECE, size - pos);
      let done = 0;
      while (done < n) done += (await fh.write(piece, done, n - done, pos + done)).bytesWritten;
    }
  });
  await measure("fsync", size, () => fh.sync());
} finally {
  await fh.close();
  await rm(scratch, { force: true });
}
// Each part: the median sample (by seconds).
const summary = {};
for (const [name, { samples }] of Object.entries(parts)) {
  const sorted = [...samples].sort((a, b) => a.seconds - b.seconds);
  summary[name] = { ...sorted[Math.floor(sorted.length / 2)], rounds: samples.length };
}
finish(probe, { bytes: size, parts: summary });
