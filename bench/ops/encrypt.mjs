// Child: encryptFile(plain → encrypted), format v2 with the default chunk (2 MiB), all tensors.
// usage: node bench/ops/encrypt.mjs PLAIN OUT KEYDIR
// Also reports when the last data byte was written (dataSeconds): the rest is the signed header
// write, fsync and rename that encryptFile does before returning.
import { args, begin, finish, loadApi, loadKeyDir } from "./_common.mjs";

const [input, output, keyDir] = args;
const api = await loadApi();
const keys = loadKeyDir(keyDir, api);
let dataAt = null;
const probe = begin();
const res = await api.encryptFile(input, output, {
  key: keys.enc,
  signKey: keys.sign,
  onProgress: (done, total) => { if (done === total && dataAt === null) dataAt = performance.now(); },
});
finish(probe, { bytes: res.bytes, tensors: res.tensors, dataSeconds: dataAt === null ? null : (dataAt - probe.t0) / 1000 });
