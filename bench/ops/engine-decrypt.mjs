// Child: decrypt-only throughput of the sidecar's engine, the way the sidecar fills a region: every
// tensor of the model packed into one /dev/shm region (ShmRegion, 64-byte aligned offsets).
// usage: node bench/ops/engine-decrypt.mjs ENCRYPTED KEYDIR ENGINE(native|js) ROUNDS
// With CTENSORS_BENCH_SHM_DIR, the region is created there (a hugetlbfs mount: written through a mapping).
// Round 1 writes into fresh tmpfs pages (first touch: page faults + zeroing); later rounds rewrite
// the same, already-touched region. Reports seconds and CPU seconds (all threads) of each round
// (opening the file is outside); the region's creation (its pages allocated up front, as the sidecar
// does) is timed on its own: createSeconds, createCpuSeconds.
import { args, begin, finish, loadApi, loadKeyDir } from "./_common.mjs";

const [input, keyDir, engine, roundsArg] = args;
process.env.CTENSORS_ENGINE = engine;
const api = await loadApi();
const { ShmRegion } = await import(new URL("../../plugin/dist/sidecar/shm/region.js", import.meta.url).href);
const { ShmInstance } = await import(new URL("../../plugin/dist/sidecar/shm/instance.js", import.meta.url).href);
const { probeShmDir } = await import(new URL("../../plugin/dist/sidecar/shm/shm-dir.js", import.meta.url).href);
// CTENSORS_BENCH_SHM_DIR: the region on another tmpfs or on hugetlbfs (bench --hugetlb), as `serve --shm-dir` puts it
const shmDir = process.env.CTENSORS_BENCH_SHM_DIR || "/dev/shm";
const shm = await ShmInstance.start(shmDir, await probeShmDir(shmDir)); // names the regions, as a sidecar does
const { packBatches, alignUp } = await import(new URL("../../plugin/dist/sidecar/load-plan.js", import.meta.url).href);
const keys = loadKeyDir(keyDir, api);
const reader = await api.CryptoTensorsReader.open(input, { keys: [keys.enc], trust: keys.trust });
const batch = packBatches(reader.tensors, (t) => t.end - t.begin, Number.MAX_SAFE_INTEGER)[0];
const tc = performance.now();
const cc = process.cpuUsage();
const region = await ShmRegion.create(Math.max(alignUp(batch.end), 64), shm); // allocates its pages (fallocate, native engine)
const createSeconds = (performance.now() - tc) / 1000;
const createCpu = process.cpuUsage(cc);
region.unlink();
const bytes = reader.tensors.reduce((s, t) => s + t.end - t.begin, 0);
const largest = reader.tensors.reduce((m, t) => Math.max(m, t.end - t.begin), 0);
const rounds = [];
const roundCpu = [];
const probe = begin();
for (let r = 0; r < Number(roundsArg ?? 2); r++) {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  if (engine === "native") {
    await api.readTensorsInto(
      batch.placements.map((p) => ({ reader, name: p.item.name, offset: p.offset })),
      { kind: "file", fd: region.fd, bytes: region.bytes, map: region.writesByMapping },
    );
  } else {
    const scratch = new Uint8Array(largest);
    for (const p of batch.placements) {
      const plain = scratch.subarray(0, p.byteSize);
      await reader.readTensorInto(p.item.name, plain);
      await region.write(plain, p.offset);
      plain.fill(0);
    }
  }
  rounds.push((performance.now() - t0) / 1000);
  const c = process.cpuUsage(c0);
  roundCpu.push((c.user + c.system) / 1e6);
}
const res = finish(probe, {
  bytes,
  engine: api.engineName(),
  threads: api.nativeThreads(),
  rounds,
  roundCpu,
  createSeconds,
  createCpuSeconds: (createCpu.user + createCpu.system) / 1e6,
  seconds: rounds[0],
});
await region.dispose({ handedOver: false });
await shm.close();
await reader.close();
void res;
