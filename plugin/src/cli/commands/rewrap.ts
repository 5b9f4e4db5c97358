// ctensors rewrap IN OUT --key old.jwk --new-key new.jwk --sign-key sign.jwk --trust old.pub.jwk [--policy FILE]

import { rewrapFile } from "../../container/rewrap-file.js";
import { zeroKey } from "../../keys/jwk.js";
import { checkOutput } from "../../model/folder.js";
import { processModel } from "../../model/process-model.js";
import { defineCommand } from "../command.js";
import {
  KEY_SOURCES_NOTE,
  KEY_TOKEN_OPTION,
  loadKeyList,
  loadOneEncryptionKey,
  loadSigningKey,
  loadTrust,
  TRUST_OPTIONS,
} from "../keys-from-args.js";
import { createProgress, trackFile } from "../progress.js";
import { usageError } from "../../errors.js";
import { hasKmsOptions, KMS_OPTIONS, kmsProviderFromArgs, newKmsMasterKey } from "../../kms/cli-args.js";
import { KmsKeyRelease } from "../../kms/release.js";
import { checkInputRelease, RELEASE_OPEN_OPTIONS, RELEASE_WRITE_OPTIONS, releaseWriter } from "../release-args.js";
import { withCleanupOnSignals } from "../signals.js";

export const rewrap = defineCommand({
  summary: "rotate the master (and signing) key without re-encrypting tensor data",
  usage: "ctensors rewrap IN OUT --key old.jwk (--new-key new.jwk | --new-kms REFERENCE) --sign-key sign.jwk --trust old.pub.jwk [options]",
  description:
    "Verifies with the old trust, unwraps every tensor's data key with the old master key, wraps it under the new one\n" +
    "and re-signs; the data section is copied byte for byte. A model folder's release manifest is checked and a new one\n" +
    "written. The current master key of a KMS-wrapped model is released by its key service when a key-service identity\n" +
    "is given (then --key is not needed).\n" +
    KEY_SOURCES_NOTE,
  options: {
    key: { type: "string", multiple: true, value: "JWK", description: "the current master key (old enc.jwk)" },
    "new-key": { type: "string", value: "JWK", description: "the new master key (same algorithm)" },
    "new-kms": {
      type: "string",
      value: "REFERENCE",
      description: "instead of --new-key: a fresh master key wrapped by a key service, vault-transit://HOST:PORT/MOUNT/keys/NAME",
    },
    "sign-key": { type: "string", value: "JWK", description: "the Ed25519 private key that signs the new header (may be a new one)" },
    ...TRUST_OPTIONS,
    ...KEY_TOKEN_OPTION,
    force: { type: "boolean", default: false, description: "replace an existing OUT (whole, once the new one is complete)" },
    ...RELEASE_OPEN_OPTIONS,
    ...RELEASE_WRITE_OPTIONS,
    ...KMS_OPTIONS,
  },
  examples: [
    "ctensors rewrap model.enc.safetensors rotated.safetensors --key keys/enc.jwk --new-key new/enc.jwk --sign-key keys/sign.jwk --trust keys/sign.pub.jwk",
    "ctensors rewrap ./my-model-encrypted ./my-model-rotated --key keys/enc.jwk --new-key new/enc.jwk --sign-key new/sign.jwk --trust keys/sign.pub.jwk",
  ],
  async run({ values, positionals, io }) {
    const [input, output] = positionals;
    if (!input || !output || positionals.length !== 2) throw usageError("expected IN and OUT");
    await checkOutput(input, output, values.force);
    const token = values["key-token"];
    const oldKeys = await loadKeyList(values.key, token);
    const kms =
      hasKmsOptions(values) || values["new-kms"] !== undefined
        ? new KmsKeyRelease([kmsProviderFromArgs(values, { requireAddress: false })])
        : undefined;
    if (!oldKeys.length && !kms) throw usageError("--key (the current master key) is required");
    if (values["new-kms"] !== undefined && values["new-key"] !== undefined) throw usageError("--new-key and --new-kms exclude each other");
    const newKey =
      values["new-kms"] !== undefined
        ? await newKmsMasterKey(values["new-kms"], values, "--new-kms")
        : await loadOneEncryptionKey(values["new-key"], "--new-key", token);
    const signKey = await loadSigningKey(values["sign-key"], token);
    const trust = await loadTrust(values.trust, values["trust-store"], token);
    const progress = createProgress(!io.quiet);
    try {
      await checkInputRelease(input, trust, values);
      const finishRelease = await releaseWriter(values, input, signKey);
      let tensors = 0;
      const r = await withCleanupOnSignals(() =>
        processModel(
          input,
          output,
          async (inFile, outFile, p) => {
            const released = await kms?.keyFor(inFile, { trust }); // the current master key, from its key service
            try {
              const res = await rewrapFile(inFile, outFile, {
                oldKeys: released ? [released, ...oldKeys] : oldKeys,
                trust,
                newKey,
                signKey,
                onProgress: trackFile(progress, `[${p.index + 1}/${p.count}] ${p.file}`),
              });
              tensors += res.tensors;
            } finally {
              if (released) zeroKey(released);
            }
          },
          undefined,
          finishRelease,
        ),
      );
      progress.stop();
      io.out(`rewrapped ${tensors} tensors in ${r.files} file(s) → ${output} (new key ${newKey.kid ?? "(no kid)"})`);
    } finally {
      progress.stop();
      [...oldKeys, newKey, signKey].forEach(zeroKey);
    }
    return 0;
  },
});
