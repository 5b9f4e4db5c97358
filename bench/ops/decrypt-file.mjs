// Child: decryptFile(encrypted → plain safetensors on disk); includes its fsync and rename.
// usage: node bench/ops/decrypt-file.mjs ENCRYPTED OUT KEYDIR
import { args, begin, finish, loadApi, loadKeyDir } from "./_common.mjs";

const [input, output, keyDir] = args;
const api = await loadApi();
const keys = loadKeyDir(keyDir, api);
let dataAt = null;
const probe = begin();
const res = await api.decryptFile(input, output, {
  keys: [keys.enc],
  trust: keys.trust,
  requireEncrypted: true,
  onProgress: (done, total) => {
    if (done === total && dataAt === null) dataAt = performance.now();
  },
});
finish(probe, { bytes: res.bytes, tensors: res.tensors, dataSeconds: dataAt === null ? null : (dataAt - probe.t0) / 1000 });
