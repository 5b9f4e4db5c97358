// ctensors sign-release DIR --sign-key sign.jwk [--trust pub.jwk...] [--model-id ID] [--release N] [--oms-key ec.pem] [--force]
// Gives an existing model folder (e.g. one encrypted by the reference implementation) a signed release
// manifest, in place, without re-encrypting: every CryptoTensors header must first verify with a
// trusted key (--trust, and the signing key itself), and every shard index must match its shards.

import { join } from "node:path";
import { CryptoTensorsReader, readHeader } from "../../container/reader.js";
import { CryptoTensorsError } from "../../errors.js";
import { publicKeyOf, zeroKey } from "../../keys/jwk.js";
import { TrustStore } from "../../keys/trust.js";
import { checkShardIndex, isDirectory, listModelFiles } from "../../model/folder.js";
import { RELEASE_MANIFEST_FILE } from "../../release/oms.js";
import { hasReleaseManifest } from "../../release/open-check.js";
import { defineCommand } from "../command.js";
import { loadSigningKey, loadTrust } from "../keys-from-args.js";
import { RELEASE_WRITE_OPTIONS, RELEASE_WRITE_USAGE, releaseWriter } from "../release-args.js";

export const signRelease = defineCommand({
  summary: "give a model folder a signed release manifest (model.sig) without re-encrypting",
  usage: `ctensors sign-release DIR --sign-key sign.jwk [--trust pub.jwk...] [--trust-store JWKS] ${RELEASE_WRITE_USAGE} [--force]`,
  options: {
    ...RELEASE_WRITE_OPTIONS,
    "sign-key": { type: "string" },
    trust: { type: "string", multiple: true },
    "trust-store": { type: "string", multiple: true },
    "key-token": { type: "string" },
    force: { type: "boolean", default: false },
  },
  async run({ values, positionals, io }) {
    const [dir] = positionals;
    if (!dir || positionals.length !== 1) throw new TypeError("expected DIR (a model folder)");
    if (!(await isDirectory(dir))) throw new TypeError(`${dir} is not a folder: a release is a model folder`);
    if ((await hasReleaseManifest(dir)) && !values.force)
      throw new TypeError(`${join(dir, RELEASE_MANIFEST_FILE)} already exists: pass --force to replace it`);
    const token = values["key-token"];
    const signKey = await loadSigningKey(values["sign-key"], token);
    try {
      const given = await loadTrust(values.trust, values["trust-store"], token);
      const trust = new TrustStore([...given.keys, publicKeyOf(signKey)]);
      const files = await listModelFiles(dir);
      if (!files.safetensors.length) throw new CryptoTensorsError("ERR_CT_FORMAT", `${dir} holds no .safetensors file`);
      let signed = 0;
      for (const rel of files.safetensors) {
        // Opening verifies the header signature (no key: nothing is decrypted).
        const reader = await CryptoTensorsReader.open(join(dir, rel), { trust });
        if (reader.crypto) signed++;
        await reader.close();
      }
      for (const index of files.indexes) {
        await checkShardIndex(dir, index, async (shard) => (await readHeader(join(dir, shard))).header.tensors.map((t) => t.name));
      }
      const write = await releaseWriter(values, dir, signKey);
      await write(dir);
      io.out(
        `wrote ${join(dir, RELEASE_MANIFEST_FILE)}: ${files.safetensors.length} weight file(s) (${signed} signed CryptoTensors) and every other file of the folder`,
      );
    } finally {
      zeroKey(signKey);
    }
    return 0;
  },
});
