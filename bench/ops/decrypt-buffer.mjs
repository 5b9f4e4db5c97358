// Child: the native engine's buffer destination (what the transformers.js hook and readTensorsInto
// use). Opens the v2 file (untimed), packs every tensor into ONE fresh buffer (never touched before,
// so each page is faulted in by the engine's writes) and decrypts the whole model into it with
// readTensorsInto (round 1), then once more into the same, now touched, buffer (round 2). The engine's
// options come from the environment (CTENSORS_NATIVE_POPULATE=0: no MADV_POPULATE_WRITE of the
// buffer), set by the driver bench/ops/native-buffer.mjs. Reports each round's wall and CPU seconds, the
// minor faults of round 1, AnonHugePages after it, and the SHA-256 of the decrypted bytes.
// usage: node bench/ops/decrypt-buffer.mjs ENCRYPTED KEYDIR
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { args, begin, finish, loadApi, loadKeyDir } from "./_common.mjs";

const [input, keyDir] = args;
const api = await loadApi();
const keys = loadKeyDir(keyDir, api);
const reader = await api.CryptoTensorsReader.open(input, { keys: [keys.enc], trust: keys.trust, requireEncrypted: true });
const anonHuge = () => Number(/^AnonHugePages:\s+(\d+) kB/m.exec(readFileSync("/proc/self/smaps_rollup", "utf8"))?.[1] ?? 0);
try {
  let total = 0;
  const items = reader.tensors.map((t) => {
    const item = { reader, name: t.name, offset: total };
    total += t.end - t.begin;
    return item;
  });
  const rounds = [];
  const roundCpu = [];
  let faults = 0;
  let hugeKiB = 0;
  const probe = begin();
  const buffer = new Uint8Array(total); // calloc of this size: a fresh anonymous mapping, untouched
  for (let round = 0; round < 2; round++) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const f0 = process.resourceUsage().minorPageFault;
    await api.readTensorsInto(items, { kind: "buffer", buffer });
    const c = process.cpuUsage(c0);
    rounds.push((performance.now() - t0) / 1000);
    roundCpu.push((c.user + c.system) / 1e6);
    if (round === 0) {
      faults = process.resourceUsage().minorPageFault - f0;
      hugeKiB = anonHuge();
    }
  }
  const sha256 = createHash("sha256").update(buffer).digest("hex");
  finish(probe, { seconds: rounds[0], bytes: total, rounds, roundCpu, faultsRound1: faults, anonHugeKiB: hugeKiB, sha256 });
} finally {
  await reader.close();
}
