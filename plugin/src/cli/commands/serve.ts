// ctensors serve [--socket PATH] [--key JWK...] [--keys JWKS...] [--trust PUB_JWK...] [--trust-store JWKS...]
//   [--allow-plaintext] [--key-token T] [--metrics-port N [--metrics-host H]] [--shm-dir DIR]
// Serves only signed, fully encrypted models unless --allow-plaintext (open-checks.ts: requiredEncryption).
// Runs the sidecar (src/sidecar, exported as `ctensors/sidecar`) until SIGTERM or SIGINT.

import { requiredEncryption } from "../../container/open-checks.js";
import { usageError } from "../../errors.js";
import { zeroKey } from "../../keys/jwk.js";
import { defineCommand } from "../command.js";
import { untilSignal } from "../signals.js";
import { HUB_OPTIONS, hubSettingsFromArgs } from "../hub-args.js";
import { KEY_SOURCES_NOTE, loadKeyList, loadTrust, SIDECAR_OPTIONS } from "../keys-from-args.js";
import { checkServeSetup } from "../serve-setup.js";
import { hasKmsOptions, KMS_OPTIONS, kmsProviderFromArgs } from "../../kms/cli-args.js";
import { KmsKeyRelease } from "../../kms/release.js";
import { RELEASE_SERVE_OPTIONS, servePolicyFromArgs } from "../release-args.js";
import { loadPolicyClaims } from "../../policy-input.js";

/** The sidecar (ctensors/sidecar), loaded on first use so that the other commands start without gRPC. */
const importSidecar = () => import("../../sidecar/index.js");

export const serve = defineCommand({
  summary: "run the sidecar: serve decrypted tensors to local clients (gRPC on a unix socket, shared memory)",
  usage: "ctensors serve --trust sign.pub.jwk --key enc.jwk [options]",
  description:
    "Serves only models signed by a trusted key with every tensor encrypted, unless --allow-plaintext; without a trusted\n" +
    "signer it would refuse every model, so it does not start (exit 2). Clients open absolute paths or Hub models\n" +
    "org/name[@rev] (downloaded into the HF cache, encrypted at rest). Model folders need a signed release manifest\n" +
    "(model.sig); a release older than the newest accepted is refused. Logs are JSON lines on stderr; runs until\n" +
    "SIGTERM or SIGINT.\n" +
    KEY_SOURCES_NOTE,
  options: {
    ...SIDECAR_OPTIONS,
    "policy-claims": {
      type: "string",
      value: "FILE",
      description: "licence claims (a JSON object) given to the models' policies as input.claims (docs/key-management.md)",
    },
    "metrics-port": {
      type: "string",
      value: "N",
      description: "serve Prometheus metrics on http://HOST:N/metrics (0: a free port; docs/sidecar.md)",
      defaultText: "off",
    },
    "metrics-host": { type: "string", value: "HOST", description: "the address the metrics endpoint binds", defaultText: "127.0.0.1" },
    ...RELEASE_SERVE_OPTIONS,
    ...HUB_OPTIONS,
    ...KMS_OPTIONS,
  },
  examples: [
    "ctensors serve --key keys/enc.jwk --trust keys/sign.pub.jwk",
    "ctensors serve --socket /run/ctensors/sidecar/sidecar.sock --keys /etc/ctensors/keys.jwks --trust-store /etc/ctensors/trust.jwks --metrics-port 9400",
  ],
  async run({ values, positionals, io }) {
    if (positionals.length) throw usageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
    // Validates the flags (both at once is a usage error); the sidecar applies the same rule per model.
    const allowPlaintext =
      requiredEncryption("serve", {
        allowPlaintext: values["allow-plaintext"],
        requireEncrypted: values["require-encrypted"],
      }) === false;
    const sidecar = await importSidecar();
    const token = values["key-token"];
    const keySpecs = [...(values.key ?? []), ...(values.keys ?? [])];
    const kms = hasKmsOptions(values) ? new KmsKeyRelease([kmsProviderFromArgs(values, { requireAddress: true })]) : undefined;
    const keys = await loadKeyList(keySpecs, token, "--key/--keys");
    try {
      const trust = await loadTrust(values.trust, values["trust-store"], token);
      const warnings = checkServeSetup({ trusted: trust.size, keys: keys.length, kms: kms !== undefined, allowPlaintext });
      // On stderr with the sidecar's own log lines, in their form (JSON lines), before it starts.
      const log = sidecar.jsonLogger((line) => io.err(line.replace(/\n$/, "")));
      for (const warning of warnings) log.warn("sidecar.setup_incomplete", { warning });
      const signal = untilSignal();
      const handle = await sidecar.startSidecar({
        socketPath: values.socket ?? sidecar.defaultSocketPath(),
        keys,
        trust,
        allowPlaintext,
        hub: hubSettingsFromArgs(values),
        ...(kms ? { kms } : {}),
        release: servePolicyFromArgs(values),
        ...(values["shm-dir"] !== undefined ? { shmDir: values["shm-dir"] } : {}),
        ...(values["policy-claims"] ? { policyClaims: await loadPolicyClaims(values["policy-claims"]) } : {}),
        ...(values["metrics-port"] !== undefined
          ? { metrics: { port: Number(values["metrics-port"]), host: values["metrics-host"] } }
          : {}),
      });
      await signal;
      await handle.close();
      return 0;
    } finally {
      keys.forEach(zeroKey);
    }
  },
});
