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
import { KEY_SOURCES_NOTE, KEY_TOKEN_OPTION, loadSigningKey, loadTrust, TRUST_OPTIONS } from "../keys-from-args.js";
import { RELEASE_WRITE_OPTIONS, releaseWriter } from "../release-args.js";

export const signRelease = defineCommand({
  summary: "give a model folder a signed release manifest (model.sig) without re-encrypting",
  usage: "ctensors sign-release DIR --sign-key sign.jwk [options]",
  description:
    "Every CryptoTensors header of DIR must first verify with a trusted key (--trust, and the signing key's own\n" +
    "public half), and every shard index must match its shards; then DIR/model.sig is written in place.\n" +
    KEY_SOURCES_NOTE,
  options: {
    "sign-key": { type: "string", value: "JWK", description: "the Ed25519 private key (sign.jwk) that signs the manifest" },
    ...TRUST_OPTIONS,
    ...KEY_TOKEN_OPTION,
    force: { type: "boolean", default: false, description: "replace an existing model.sig (release: one past it, unless --release)" },
    ...RELEASE_WRITE_OPTIONS,
  },
  examples: [
    "ctensors sign-release ./reference-encrypted-model --sign-key keys/sign.jwk",
    "ctensors sign-release ./my-model-encrypted --sign-key keys/sign.jwk --trust publisher.pub.jwk --model-id org/my-model --force",
  ],
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
