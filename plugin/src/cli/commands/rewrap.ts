// ctensors rewrap IN OUT --key old.jwk --new-key new.jwk --sign-key sign.jwk --trust old.pub.jwk [--policy FILE]

import { rewrapFile } from "../../container/rewrap-file.js";
import { zeroKey } from "../../keys/jwk.js";
import { checkOutput } from "../../model/folder.js";
import { processModel } from "../../model/process-model.js";
import type { Command } from "../command.js";
import { loadKeyList, loadOneEncryptionKey, loadSigningKey, loadTrust } from "../keys-from-args.js";
import { createProgress, trackFile } from "../progress.js";
import { withCleanupOnSignals } from "../signals.js";

export const rewrap: Command = {
  summary: "rotate the master (and signing) key without re-encrypting tensor data",
  usage: "ctensors rewrap IN OUT --key old.jwk --new-key new.jwk --sign-key sign.jwk --trust old.pub.jwk [--trust-store JWKS] [--force]",
  options: {
    key: { type: "string", multiple: true },
    "new-key": { type: "string" },
    "sign-key": { type: "string" },
    trust: { type: "string", multiple: true },
    "trust-store": { type: "string", multiple: true },
    "key-token": { type: "string" },
    force: { type: "boolean", default: false },
  },
  async run({ values, positionals, io }) {
    const [input, output] = positionals;
    if (!input || !output || positionals.length !== 2) throw new TypeError("expected IN and OUT");
    await checkOutput(input, output, values.force as boolean);
    const token = values["key-token"] as string | undefined;
    const oldKeys = await loadKeyList(values.key as string[] | undefined, token);
    if (!oldKeys.length) throw new TypeError("--key (the current master key) is required");
    const newKey = await loadOneEncryptionKey(values["new-key"] as string | undefined, "--new-key", token);
    const signKey = await loadSigningKey(values["sign-key"] as string | undefined, token);
    const trust = await loadTrust(values.trust as string[] | undefined, values["trust-store"] as string[] | undefined, token);
    const progress = createProgress(!io.quiet);
    try {
      let tensors = 0;
      const r = await withCleanupOnSignals(() => processModel(input, output, async (inFile, outFile, p) => {
        const res = await rewrapFile(inFile, outFile, {
          oldKeys, trust, newKey, signKey,
          onProgress: trackFile(progress, `[${p.index + 1}/${p.count}] ${p.file}`),
        });
        tensors += res.tensors;
      }));
      progress.stop();
      io.out(`rewrapped ${tensors} tensors in ${r.files} file(s) → ${output} (new key ${newKey.kid ?? "(no kid)"})`);
    } finally {
      progress.stop();
      [...oldKeys, newKey, signKey].forEach(zeroKey);
    }
    return 0;
  },
};
