// Child: the release check a load pays (verifyRelease on a model folder): the manifest's signature, the
// file list, each shard's header digest and the other files' sha256; with --full-hash, every file
// re-hashed in full (what an OMS verifier does). With --sign, writes the manifest first (untimed).
// usage: node bench/ops/release-verify.mjs FOLDER KEYDIR [--full-hash] [--sign]
import { statSync } from "node:fs";
import { join } from "node:path";
import { args, begin, finish, loadApi, loadKeyDir } from "./_common.mjs";

const [folder, keyDir, ...flags] = args;
const api = await loadApi();
const release = await import(new URL("../../plugin/dist/release/index.js", import.meta.url).href);
const keys = loadKeyDir(keyDir, api);
if (flags.includes("--sign")) await release.writeRelease(folder, { signKey: keys.sign, model: "bench/model", release: 1 });
const fullHash = flags.includes("--full-hash");
const probe = begin();
const info = await release.verifyRelease(folder, { trust: keys.trust, fullHash });
const bytes = info.files.reduce((sum, f) => sum + statSync(join(folder, f)).size, 0);
finish(probe, { bytes, files: info.files.length, headerBound: info.headerBound.length });
