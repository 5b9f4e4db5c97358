// Child: decrypt to memory through readTensorInto with ONE reused buffer (sized to the largest
// tensor), instead of readTensor's fresh buffer per tensor. Same work otherwise as decrypt-mem.mjs.
// usage: node bench/ops/decrypt-into.mjs ENCRYPTED KEYDIR
import { args, begin, finish, loadApi, loadKeyDir } from "./_common.mjs";

const [input, keyDir] = args;
const api = await loadApi();
const keys = loadKeyDir(keyDir, api);
const probe = begin();
const reader = await api.CryptoTensorsReader.open(input, { keys: [keys.enc], trust: keys.trust, requireEncrypted: true });
let bytes = 0;
try {
  const largest = Math.max(...reader.tensors.map((t) => t.end - t.begin));
  const buf = new Uint8Array(largest);
  for (const t of reader.tensors) {
    const view = buf.subarray(0, t.end - t.begin);
    await reader.readTensorInto(t.name, view);
    bytes += view.length;
  }
} finally {
  await reader.close();
}
finish(probe, { bytes, tensors: reader.tensors.length });
