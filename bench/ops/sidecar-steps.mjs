// Child: where a sidecar RESIDENT load's time goes, step by step, with the sidecar's own building
// blocks (the package's CryptoTensorsReader.readTensorInto, plugin/dist/sidecar's ShmRegion and packBatches)
// in the same order as LoadSession.fill: per tensor, read + decrypt into one scratch buffer (the size
// of the largest tensor), pwrite it into a /dev/shm region (regions of ≤ 1 GiB), zero the scratch.
// Nothing is mapped or sent; the regions are unlinked at the end.
// usage: node bench/ops/sidecar-steps.mjs ENCRYPTED KEYDIR
//   seconds         the whole loop (open + regions + every tensor)
//   openSeconds     CryptoTensorsReader.open (signature check, DEK unwrap)
//   regionSeconds   ShmRegion.create (open O_EXCL + ftruncate)
//   readSeconds     a separate pass first: FileHandle.read of each tensor's bytes into the scratch
//                   (page cache warm): the read share of readTensorInto
//   decryptSeconds  readTensorInto (read + AES-GCM openInto in place)
//   writeSeconds    ShmRegion.write (pwrite on libuv's thread pool, first touch of tmpfs pages)
//   zeroSeconds     scratch.fill(0)
import { open } from "node:fs/promises";
import { args, begin, finish, loadApi, loadKeyDir } from "./_common.mjs";

const [input, keyDir] = args;
const api = await loadApi();
const { ShmRegion } = await import(new URL("../../plugin/dist/sidecar/shm/region.js", import.meta.url).href);
const { ShmInstance } = await import(new URL("../../plugin/dist/sidecar/shm/instance.js", import.meta.url).href);
const shm = await ShmInstance.start(); // names the regions, as a sidecar does
const { packBatches, alignUp, ALIGN_BYTES } = await import(new URL("../../plugin/dist/sidecar/load-plan.js", import.meta.url).href);
const RESIDENT_REGION_BYTES = 1024 * 1024 * 1024; // the sidecar's default residentRegionBytes
const keys = loadKeyDir(keyDir, api);
const now = () => performance.now() / 1000;

// Separate read-only pass (its own timing, outside the loop below).
let readSeconds = 0;
{
  const reader = await api.CryptoTensorsReader.open(input, { keys: [keys.enc], trust: keys.trust, requireEncrypted: true });
  const largest = Math.max(...reader.tensors.map((t) => t.end - t.begin));
  const scratch = new Uint8Array(largest);
  const fh = await open(input, "r");
  try {
    for (const t of reader.tensors) {
      const len = t.end - t.begin;
      const t0 = now();
      for (let done = 0; done < len; ) {
        const { bytesRead } = await fh.read(scratch, done, len - done, reader.header.dataStart + t.begin + done);
        if (!bytesRead) throw new Error("short read");
        done += bytesRead;
      }
      readSeconds += now() - t0;
    }
  } finally {
    await fh.close();
    await reader.close();
  }
}

const probe = begin();
const t0 = now();
const reader = await api.CryptoTensorsReader.open(input, { keys: [keys.enc], trust: keys.trust, requireEncrypted: true });
const openSeconds = now() - t0;
let regionSeconds = 0,
  decryptSeconds = 0,
  writeSeconds = 0,
  zeroSeconds = 0,
  bytes = 0,
  regions = 0;
const entries = reader.tensors.map((t) => ({ name: t.name, byteSize: t.end - t.begin }));
const scratch = new Uint8Array(Math.max(...entries.map((e) => e.byteSize)));
const made = [];
try {
  for (const batch of packBatches(entries, (e) => e.byteSize, RESIDENT_REGION_BYTES)) {
    let t = now();
    const region = await ShmRegion.create(Math.max(alignUp(batch.end), ALIGN_BYTES), shm);
    made.push(region);
    regions++;
    regionSeconds += now() - t;
    for (const p of batch.placements) {
      if (p.byteSize === 0) continue;
      const plain = scratch.subarray(0, p.byteSize);
      t = now();
      await reader.readTensorInto(p.item.name, plain);
      const t1 = now();
      await region.write(plain, p.offset);
      const t2 = now();
      plain.fill(0);
      const t3 = now();
      decryptSeconds += t1 - t;
      writeSeconds += t2 - t1;
      zeroSeconds += t3 - t2;
      bytes += p.byteSize;
    }
  }
} finally {
  await reader.close();
}
const result = finish(probe, {
  bytes,
  tensors: entries.length,
  regions,
  openSeconds,
  regionSeconds,
  readSeconds,
  decryptSeconds,
  writeSeconds,
  zeroSeconds,
});
for (const r of made) await r.dispose({ handedOver: false });
await shm.close();
void result;
