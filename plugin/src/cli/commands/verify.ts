// ctensors verify IN --trust sign.pub.jwk [--key enc.jwk] [--allow-plaintext] [--json]
// Checks the header signature with a trusted key, the policy and the signed digests of plaintext
// tensors; with --key it also decrypts every tensor in memory so every tag is checked. A file that is
// not signed and fully encrypted fails (open-checks.ts: requiredEncryption) unless --allow-plaintext.

import { CryptoTensorsError } from "../../errors.js";
import { requiredEncryption } from "../../container/open-checks.js";
import { CryptoTensorsReader } from "../../container/reader.js";
import { assertRegularFile } from "../../io/regular-file.js";
import { zeroKey } from "../../keys/jwk.js";
import { readFile } from "node:fs/promises";
import { basename, relative } from "node:path";
import { modelSafetensors } from "../../model/process-model.js";
import { checkGraph } from "../../onnx/encrypt.js";
import { ONNX_CONTAINER_SUFFIX, ONNX_MANIFEST_KEY } from "../../onnx/model.js";
import { defineCommand } from "../command.js";
import { KEY_SOURCES_NOTE, KEY_TOKEN_OPTION, loadKeyList, loadTrust, TRUST_OPTIONS } from "../keys-from-args.js";
import { usageError } from "../../errors.js";
import { printable, toJson } from "../../format/printable.js";
import { createProgress, trackFile } from "../progress.js";
import { checkInputRelease, RELEASE_OPEN_OPTIONS } from "../release-args.js";

export const verify = defineCommand({
  summary: "verify signatures (and with --key, every tensor's authentication tag)",
  usage: "ctensors verify IN --trust sign.pub.jwk [options]",
  description:
    "Checks every file's header signature with a trusted key, the policy and the signed digests of plaintext tensors;\n" +
    "with --key every encrypted tensor is also decrypted in memory, so every authentication tag is checked. Fails\n" +
    "unless every file is signed by a trusted key and fully encrypted. A folder's signed release manifest (model.sig)\n" +
    "is checked first. Progress on stderr when it is a terminal (not with --quiet).\n" +
    KEY_SOURCES_NOTE,
  options: {
    ...TRUST_OPTIONS,
    key: {
      type: "string",
      multiple: true,
      value: "JWK",
      description: "a master key: also decrypt every tensor in memory and check its tag",
    },
    ...KEY_TOKEN_OPTION,
    "allow-plaintext": {
      type: "boolean",
      default: false,
      description: "also accept plain and partially encrypted files (warning about tensors no signature covers)",
    },
    "require-encrypted": { type: "boolean", default: false, description: "fail unless fully encrypted (the default; kept for scripts)" },
    "full-hash": {
      type: "boolean",
      default: false,
      description: "re-hash every file of a folder's release in full, as an OMS verifier does",
    },
    json: { type: "boolean", default: false, description: "print the results as JSON on stdout" },
    ...RELEASE_OPEN_OPTIONS,
  },
  examples: [
    "ctensors verify model.enc.safetensors --trust keys/sign.pub.jwk",
    "ctensors verify ./my-model-encrypted --trust keys/sign.pub.jwk --key keys/enc.jwk --json",
  ],
  async run({ values, positionals, io }) {
    if (positionals.length !== 1) throw usageError("expected IN");
    const requireEncrypted = requiredEncryption("verify", {
      allowPlaintext: values["allow-plaintext"],
      requireEncrypted: values["require-encrypted"],
    });
    const token = values["key-token"];
    const trust = await loadTrust(values.trust, values["trust-store"], token);
    const keys = await loadKeyList(values.key, token);
    const results = [];
    // Bytes of tensors checked, per file, on stderr when it is a terminal (progress.ts); never on stdout.
    const progress = createProgress(!io.quiet);
    try {
      // The listing first: it refuses non-regular files, and an empty folder is reported as such.
      const files = await modelSafetensors(positionals[0]!);
      // An empty folder proves nothing: verifying it must not succeed.
      if (files.length === 0) throw new CryptoTensorsError("ERR_CT_FORMAT", `${positionals[0]} holds no .safetensors file to verify`);
      const release = await checkInputRelease(positionals[0]!, trust, values, { fullHash: values["full-hash"] === true });
      if (release && !values.json) {
        io.out(
          `${printable(positionals[0]!)}: release ${release.release} of ${printable(release.model)}, signed by trusted key ${printable(release.signer.kid ?? "(no kid)")}: ${release.files.length} file(s) match`,
        );
      }
      for (const [index, file] of files.entries()) {
        const reader = await CryptoTensorsReader.open(file, { trust, keys: keys.length ? keys : undefined, requireEncrypted });
        try {
          // Plaintext tensors with a digest are checked always; encrypted ones when a key was given.
          const toCheck = reader.tensors.filter((t) =>
            reader.isEncrypted(t.name) ? keys.length > 0 : reader.crypto?.digests?.has(t.name) === true,
          );
          let checked = 0;
          const total = toCheck.reduce((n, t) => n + (t.end - t.begin), 0);
          const report = trackFile(
            progress,
            `[${index + 1}/${files.length}] ${printable(relative(positionals[0]!, file) || basename(file))}`,
          );
          let done = 0;
          if (total > 0) report(0, total);
          for await (const [t] of reader.readEach(toCheck)) {
            checked++;
            done += t.end - t.begin;
            report(done, total);
          }
          progress.stop();
          if (file.endsWith(ONNX_CONTAINER_SUFFIX)) {
            // ONNX weights: the graph beside the container must match the signed manifest's digest.
            const graph = file.slice(0, -ONNX_CONTAINER_SUFFIX.length);
            await assertRegularFile(graph);
            checkGraph(new Uint8Array(await readFile(graph)), basename(graph), reader.header.metadata?.get(ONNX_MANIFEST_KEY));
          }
          const unauthenticated = reader.unauthenticatedTensors();
          results.push({
            file,
            ok: true,
            encrypted: reader.crypto !== null,
            signer: reader.signer?.kid ?? null,
            tensorsChecked: checked,
            unauthenticated,
          });
          if (!values.json) {
            if (!reader.crypto) io.out(`${printable(file)}: plain safetensors, nothing to verify (not signed)`);
            else
              io.out(
                `${printable(file)}: OK, signed by trusted key ${printable(reader.signer?.kid ?? "(no kid)")}; ${checked} tensor(s) authenticated${keys.length ? "" : " (pass --key to check encrypted tensors' tags)"}`,
              );
            if (reader.crypto && unauthenticated.length)
              io.err(
                `warning: ${printable(file)}: ${unauthenticated.length} plaintext tensor(s) are not covered by the signature (e.g. ${printable(unauthenticated[0]!)})`,
              );
          }
        } finally {
          await reader.close();
        }
      }
    } finally {
      progress.stop();
      keys.forEach(zeroKey);
    }
    if (values.json) io.out(toJson(results.length === 1 ? results[0] : results, 2));
    return 0;
  },
});
