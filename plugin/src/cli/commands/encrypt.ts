// ctensors encrypt IN OUT --key enc.jwk --sign-key sign.jwk [--tensors PATTERN...] [--format-version 1|2]
//                  [--chunk-size BYTES] [--policy FILE] [--no-plaintext-digests] [--force]

import { readFile } from "node:fs/promises";
import { encryptFile, type EncryptOptions } from "../../container/encrypt-file.js";
import { checkChunkBytes, DEFAULT_CHUNK_BYTES, MAX_CHUNK_BYTES } from "../../crypto/chunked.js";
import { DEFAULT_POLICY_TEXT, type Policy } from "../../container/reserved.js";
import { checkOutput } from "../../model/folder.js";
import { processModel } from "../../model/process-model.js";
import { markEncryptedConfigs } from "../../model/transformers-config.js";
import { encryptOnnxFile } from "../../onnx/encrypt.js";
import { CryptoTensorsError, usageError } from "../../errors.js";
import { defineCommand } from "../command.js";
import { KEY_SOURCES_NOTE, KEY_TOKEN_OPTION, loadOneEncryptionKey, loadSigningKey } from "../keys-from-args.js";
import { createProgress, trackFile } from "../progress.js";
import { KMS_OPTIONS, newKmsMasterKey } from "../../kms/cli-args.js";
import { RELEASE_WRITE_OPTIONS, releaseWriter } from "../release-args.js";
import { withCleanupOnSignals } from "../signals.js";

/** A policy file: JSON {"local": rego, "remote"?: rego}, or a .rego text used as the local policy. */
async function loadPolicy(path: string): Promise<Policy> {
  const text = await readFile(path, "utf8");
  if (text.trimStart().startsWith("{")) {
    const json = JSON.parse(text) as Partial<Policy>;
    if (typeof json.local !== "string" && typeof json.remote !== "string")
      throw usageError(`${path}: expected {"local": "...", "remote": "..."}`);
    return { local: json.local ?? DEFAULT_POLICY_TEXT, remote: json.remote ?? DEFAULT_POLICY_TEXT };
  }
  return { local: text, remote: DEFAULT_POLICY_TEXT };
}

function positiveInt(value: string | undefined, option: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw usageError(`${option} must be a positive integer, got ${value}`);
  return n;
}

export const encrypt = defineCommand({
  summary: "encrypt and sign a safetensors file or a model folder",
  usage: "ctensors encrypt IN OUT (--key enc.jwk | --kms REFERENCE) --sign-key sign.jwk [options]",
  description:
    "IN and OUT are a .safetensors file or a model folder (every weight file encrypted, the other files copied; ONNX\n" +
    "models in the transformers.js layout too). A model folder also gets a signed release manifest (model.sig).\n" +
    "OUT appears whole or not at all; an existing OUT is replaced only with --force.\n" +
    KEY_SOURCES_NOTE,
  options: {
    key: { type: "string", value: "JWK", description: "the master key (enc.jwk) the tensors are encrypted under" },
    kms: {
      type: "string",
      value: "REFERENCE",
      description: "instead of --key: a fresh master key wrapped by a key service, vault-transit://HOST:PORT/MOUNT/keys/NAME",
    },
    "sign-key": { type: "string", value: "JWK", description: "the Ed25519 private key (sign.jwk) that signs the header" },
    ...KEY_TOKEN_OPTION,
    tensors: {
      type: "string",
      multiple: true,
      value: "PATTERN",
      description: "a glob of tensor names to encrypt, e.g. 'model.layers.*.mlp.*' (one that matches nothing is an error)",
      defaultText: "every tensor",
    },
    "format-version": {
      type: "string",
      value: "1|2",
      default: "2",
      description: "2: chunked (reference 0.2.3); 1: monolithic (reference 0.2.0-0.2.2)",
    },
    "chunk-size": {
      type: "string",
      value: "BYTES",
      description: `chunk size of format 2, at most ${MAX_CHUNK_BYTES}`,
      defaultText: String(DEFAULT_CHUNK_BYTES),
    },
    policy: {
      type: "string",
      value: "FILE",
      description: 'the embedded policy: {"local": "<rego>", "remote": "<rego>"} or a .rego file (the local policy)',
      defaultText: "the reference's default policy (allow)",
    },
    "no-plaintext-digests": {
      type: "boolean",
      default: false,
      description: "do not sign digests of the tensors left in plaintext (by default changing them is detected)",
    },
    force: { type: "boolean", default: false, description: "replace an existing OUT (whole, once the new one is complete)" },
    ...RELEASE_WRITE_OPTIONS,
    ...KMS_OPTIONS,
  },
  examples: [
    "ctensors encrypt model.safetensors model.enc.safetensors --key keys/enc.jwk --sign-key keys/sign.jwk",
    "ctensors encrypt ./my-model ./my-model-encrypted --key keys/enc.jwk --sign-key keys/sign.jwk --model-id org/my-model",
    "ctensors encrypt model.safetensors partial.safetensors --key keys/enc.jwk --sign-key keys/sign.jwk --tensors 'model.layers.*.mlp.*'",
    "ctensors encrypt ./my-model ./out --kms vault-transit://127.0.0.1:8200/transit/keys/models --kms-token-file token --sign-key keys/sign.jwk",
  ],
  async run({ values, positionals, io }) {
    const [input, output] = positionals;
    if (!input || !output || positionals.length !== 2) throw usageError("expected IN and OUT");
    const version = Number(values["format-version"]);
    if (version !== 1 && version !== 2) throw usageError("--format-version must be 1 or 2");
    const chunkBytes = positiveInt(values["chunk-size"], "--chunk-size");
    if (chunkBytes !== undefined) checkChunkBytes(chunkBytes);
    if (chunkBytes !== undefined && version === 1) throw usageError("--chunk-size applies to format version 2 only");
    if (/\.onnx(_data(_\d+)?)?$/.test(input))
      throw usageError(
        `${input}: ONNX models are encrypted as a model folder (IN = the folder that holds onnx/); see docs/transformersjs.md`,
      );
    await checkOutput(input, output, values.force);
    const token = values["key-token"];
    if (values.kms !== undefined && values.key !== undefined) throw usageError("--key and --kms exclude each other");
    const key =
      values.kms !== undefined
        ? await newKmsMasterKey(values.kms, values, "--kms")
        : await loadOneEncryptionKey(values.key, "--key", token);
    const signKey = await loadSigningKey(values["sign-key"], token);
    const policy = values.policy ? await loadPolicy(values.policy) : undefined;
    const progress = createProgress(!io.quiet);
    let encrypted = 0;
    let total = 0;
    const common: EncryptOptions = {
      key,
      signKey,
      policy,
      chunkBytes,
      tensors: values.tensors,
      formatVersion: version,
      plaintextDigests: !values["no-plaintext-digests"],
      onWarning: (m: string) => io.err(`warning: ${m}`),
    };
    try {
      const finishRelease = await releaseWriter(values, input, signKey);
      const result = await withCleanupOnSignals(() =>
        processModel(
          input,
          output,
          async (inFile, outFile, p) => {
            const r = await encryptFile(inFile, outFile, {
              ...common,
              onProgress: trackFile(progress, `[${p.index + 1}/${p.count}] ${p.file}`),
            });
            encrypted += r.encrypted;
            total += r.tensors;
          },
          async (inRoot, outRoot, files) => {
            // ONNX models (transformers.js layout): weights → onnx/X.onnx.cryptotensors, graph kept.
            const written: string[] = [];
            const consumed = new Set<string>();
            for (const rel of files.onnx) {
              const r = await encryptOnnxFile(inRoot, outRoot, rel, common);
              written.push(...r.written);
              r.consumed.forEach((c) => consumed.add(c));
              encrypted += r.result.encrypted;
              total += r.result.tensors;
            }
            // Never copy ONNX external data that no graph refers to: it would be plaintext weights.
            const stray = files.others.filter((f) => /\.onnx_data(_\d+)?$|\.onnx\.data$/.test(f) && !consumed.has(f));
            if (stray.length)
              throw new CryptoTensorsError(
                "ERR_CT_FORMAT",
                `${stray[0]} looks like ONNX external data but no .onnx graph refers to it; refusing to copy it in plaintext`,
              );
            return { written, consumed, files: files.onnx.length };
          },
          async (stage) => {
            // plain transformers refuses the folder (model/transformers-config.ts); before the release manifest binds config.json
            await markEncryptedConfigs(stage);
            await finishRelease(stage);
          },
        ),
      );
      progress.stop();
      io.out(
        `encrypted ${encrypted}/${total} tensors in ${result.files} file(s) → ${output} (format v${version})${result.copied ? `, copied ${result.copied} other file(s)` : ""}`,
      );
    } finally {
      progress.stop();
      key.k.fill(0);
      signKey.d?.fill(0);
    }
    return 0;
  },
});
