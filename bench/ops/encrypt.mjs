// Child: encryptFile(plain → encrypted), format v2 with the default chunk (2 MiB), all tensors.
// usage: node bench/ops/encrypt.mjs PLAIN OUT KEYDIR [FORMAT_VERSION (2)]
// Also reports when the last data byte was written (dataSeconds): the rest is the signed header
// write, fsync and rename that encryptFile does before returning.
import { args, begin, finish, loadApi, loadKeyDir } from "./_common.mjs";

const [input, output, keyDir, version = "2"] = args;
const api = await loadApi();
const keys = loadKeyDir(keyDir, api);
let dataAt = null;
const probe = begin();
const res = await api.encryptFile(input, output, {
  key: keys.enc,
  signKey: keys.sign,
  formatVersion: Number(version),
  onProgress: (done, total) => {
    if (done === total && dataAt === null) dataAt = performance.now();
  },
});
finish(probe, {
  engine: api.engineName(),
  bytes: res.bytes,
  tensors: res.tensors,
  dataSeconds: dataAt === null ? null : (dataAt - probe.t0) / 1000,
});
