// Child: decrypt to memory. CryptoTensorsReader.open with the keys (signature check, policy, DEK
// unwrap) + readTensor of every tensor, each result discarded at once.
// usage: node bench/ops/decrypt-mem.mjs ENCRYPTED KEYDIR
import { args, begin, finish, loadApi, loadKeyDir } from "./_common.mjs";

const [input, keyDir] = args;
const api = await loadApi();
const keys = loadKeyDir(keyDir, api);
const probe = begin();
const reader = await api.CryptoTensorsReader.open(input, { keys: [keys.enc], trust: keys.trust, requireEncrypted: true });
let bytes = 0;
let largest = 0;
try {
  for (const t of reader.tensors) {
    const data = await reader.readTensor(t.name);
    bytes += data.length;
    if (data.length > largest) largest = data.length;
  }
} finally {
  await reader.close();
}
finish(probe, { bytes, tensors: reader.tensors.length, largestTensorBytes: largest });
