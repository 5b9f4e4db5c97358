// ctensors decrypt IN OUT --key enc.jwk --trust sign.pub.jwk [--require-encrypted] [--force]
// A file with nothing encrypted is refused (there is nothing to decrypt: open-checks.ts requiredEncryption);
// with --require-encrypted, so is a file with any tensor in plaintext.

import { decryptFile } from "../../container/decrypt-file.js";
import { requiredEncryption } from "../../container/open-checks.js";
import { zeroKey } from "../../keys/jwk.js";
import { checkOutput } from "../../model/folder.js";
import { processModel } from "../../model/process-model.js";
import { unmarkDecryptedConfigs } from "../../model/transformers-config.js";
import { decryptOnnxFile } from "../../onnx/encrypt.js";
import { ONNX_CONTAINER_SUFFIX } from "../../onnx/model.js";
import { CryptoTensorsError, usageError } from "../../errors.js";
import { defineCommand } from "../command.js";
import { KEY_SOURCES_NOTE, KEY_TOKEN_OPTION, loadKeyList, loadTrust, TRUST_OPTIONS } from "../keys-from-args.js";
import { createProgress, trackFile } from "../progress.js";
import { checkInputRelease, RELEASE_OPEN_OPTIONS } from "../release-args.js";
import { withCleanupOnSignals } from "../signals.js";

export const decrypt = defineCommand({
  summary: "verify and decrypt into plain safetensors",
  usage: "ctensors decrypt IN OUT --key enc.jwk --trust sign.pub.jwk [options]",
  description:
    "Verifies the signature with a trusted key, evaluates the policy, decrypts and authenticates every tensor and\n" +
    "writes plain safetensors (mode 0600). A folder's release manifest is checked first. A file with nothing\n" +
    "encrypted is refused (there is nothing to decrypt). OUT appears whole or not at all.\n" +
    KEY_SOURCES_NOTE,
  options: {
    key: {
      type: "string",
      multiple: true,
      value: "JWK",
      description: "the master key (enc.jwk); the one whose kid the header names is used",
    },
    ...TRUST_OPTIONS,
    ...KEY_TOKEN_OPTION,
    "require-encrypted": { type: "boolean", default: false, description: "refuse a partially encrypted file too" },
    force: { type: "boolean", default: false, description: "replace an existing OUT (whole, once the new one is complete)" },
    ...RELEASE_OPEN_OPTIONS,
  },
  examples: [
    "ctensors decrypt model.enc.safetensors model.safetensors --key keys/enc.jwk --trust keys/sign.pub.jwk",
    "ctensors decrypt ./my-model-encrypted ./my-model-plain --key keys/enc.jwk --trust keys/sign.pub.jwk --force",
  ],
  async run({ values, positionals, io }) {
    const [input, output] = positionals;
    if (!input || !output || positionals.length !== 2) throw usageError("expected IN and OUT");
    await checkOutput(input, output, values.force);
    const requireEncrypted = requiredEncryption("decrypt", { requireEncrypted: values["require-encrypted"] });
    const token = values["key-token"];
    const keys = await loadKeyList(values.key, token);
    const trust = await loadTrust(values.trust, values["trust-store"], token);
    const progress = createProgress(!io.quiet);
    try {
      await checkInputRelease(input, trust, values);
      let tensors = 0;
      const r = await withCleanupOnSignals(() =>
        processModel(
          input,
          output,
          async (inFile, outFile, p) => {
            const res = await decryptFile(inFile, outFile, {
              keys,
              trust,
              requireEncrypted,
              onProgress: trackFile(progress, `[${p.index + 1}/${p.count}] ${p.file}`),
            });
            tensors += res.tensors;
          },
          async (inRoot, outRoot, files) => {
            // ONNX models: graph + X.onnx.cryptotensors → the original X.onnx and its external data.
            const written: string[] = [];
            const consumed = new Set<string>();
            const containers = files.safetensors.filter((f) => f.endsWith(ONNX_CONTAINER_SUFFIX));
            for (const rel of containers) {
              const graph = rel.slice(0, -ONNX_CONTAINER_SUFFIX.length);
              if (!files.onnx.includes(graph)) throw new CryptoTensorsError("ERR_CT_FORMAT", `${rel} has no graph ${graph} beside it`);
              const res = await decryptOnnxFile(inRoot, outRoot, graph, { keys, trust, requireEncrypted });
              written.push(...res.written);
              consumed.add(rel).add(graph);
              tensors += res.tensors;
            }
            return { written, consumed, files: containers.length };
            // plain transformers loads the output again (model/transformers-config.ts); inside the staged folder
          },
          (stage) => unmarkDecryptedConfigs(stage),
        ),
      );
      progress.stop();
      io.out(`decrypted ${tensors} tensors in ${r.files} file(s) → ${output}`);
    } finally {
      progress.stop();
      keys.forEach(zeroKey);
    }
    return 0;
  },
});
