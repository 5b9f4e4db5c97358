// ctensors rewrap IN OUT --key old.jwk --new-key new.jwk --sign-key sign.jwk --trust old.pub.jwk [--policy FILE]

import { rewrapFile } from "../../container/rewrap-file.js";
import { zeroKey } from "../../keys/jwk.js";
import { checkOutput } from "../../model/folder.js";
import { processModel } from "../../model/process-model.js";
import { defineCommand } from "../command.js";
import { loadKeyList, loadOneEncryptionKey, loadSigningKey, loadTrust } from "../keys-from-args.js";
import { createProgress, trackFile } from "../progress.js";
import { usageError } from "../../errors.js";
import { hasKmsOptions, KMS_OPTIONS, KMS_USAGE, kmsProviderFromArgs, newKmsMasterKey } from "../../kms/cli-args.js";
import { KmsKeyRelease } from "../../kms/release.js";
import { checkInputRelease, RELEASE_OPEN_OPTIONS, RELEASE_WRITE_OPTIONS, RELEASE_WRITE_USAGE, releaseWriter } from "../release-args.js";
import { withCleanupOnSignals } from "../signals.js";

export const rewrap = defineCommand({
  summary: "rotate the master (and signing) key without re-encrypting tensor data",
  usage:
    "ctensors rewrap IN OUT --key old.jwk --new-key new.jwk --sign-key sign.jwk --trust old.pub.jwk [--trust-store JWKS] [--force]\n" +
    "  key service: --new-kms vault-transit://HOST:PORT/MOUNT/keys/NAME instead of --new-key; the current master key of a\n" +
    "  KMS-wrapped model is released by its key service when a key-service identity is given (instead of --key)\n" +
    KMS_USAGE +
    `\n  A model folder's release manifest is checked (--allow-unsigned-release: none needed) and a new one written: ${RELEASE_WRITE_USAGE}`,
  options: {
    ...RELEASE_WRITE_OPTIONS,
    ...RELEASE_OPEN_OPTIONS,
    key: { type: "string", multiple: true },
    "new-key": { type: "string" },
    "sign-key": { type: "string" },
    trust: { type: "string", multiple: true },
    "trust-store": { type: "string", multiple: true },
    "key-token": { type: "string" },
    force: { type: "boolean", default: false },
    "new-kms": { type: "string" },
    ...KMS_OPTIONS,
  },
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
