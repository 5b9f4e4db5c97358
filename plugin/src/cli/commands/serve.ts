// ctensors serve [--socket PATH] [--key JWK...] [--keys JWKS...] [--trust PUB_JWK...] [--trust-store JWKS...]
//   [--allow-plaintext] [--key-token T] [--metrics-port N [--metrics-host H]]
// Serves only signed, fully encrypted models unless --allow-plaintext (open-checks.ts: requiredEncryption).
// Runs the sidecar (src/sidecar, exported as `ctensors/sidecar`) until SIGTERM or SIGINT.

import { requiredEncryption } from "../../container/open-checks.js";
import { usageError } from "../../errors.js";
import { zeroKey } from "../../keys/jwk.js";
import { defineCommand } from "../command.js";
import { untilSignal } from "../signals.js";
import { HUB_OPTIONS, HUB_USAGE, hubSettingsFromArgs } from "../hub-args.js";
import { loadKeyList, loadTrust, SIDECAR_OPTIONS } from "../keys-from-args.js";
import { hasKmsOptions, KMS_OPTIONS, KMS_USAGE, kmsProviderFromArgs } from "../../kms/cli-args.js";
import { KmsKeyRelease } from "../../kms/release.js";
import { RELEASE_SERVE_OPTIONS, RELEASE_SERVE_USAGE, servePolicyFromArgs } from "../release-args.js";
import { loadPolicyClaims } from "../../policy-input.js";

/** The sidecar (ctensors/sidecar), loaded on first use so that the other commands start without gRPC. */
const importSidecar = () => import("../../sidecar/index.js");

export const serve = defineCommand({
  summary: "run the sidecar: serve decrypted tensors to local clients (gRPC on a unix socket, shared memory)",
  usage:
    "ctensors serve [--socket PATH] [--key JWK...] [--keys JWKS...] [--trust PUB_JWK...] [--trust-store JWKS...] [--allow-plaintext] [--key-token T]\n" +
    "  Serves only models signed by a trusted key with every tensor encrypted, unless --allow-plaintext\n" +
    "  (plain and partially encrypted models too; Hub repos declared confidential stay strict).\n" +
    "  default socket: $CTENSORS_SOCKET, else $XDG_RUNTIME_DIR/ctensors/sidecar.sock, else /tmp/ctensors-<uid>/sidecar.sock\n" +
    "  Clients open absolute paths or Hub models org/name[@rev] (downloaded into the HF cache, encrypted at rest).\n" +
    `  Model folders need a signed release manifest (model.sig); older releases than the newest accepted are refused: ${RELEASE_SERVE_USAGE}\n` +
    HUB_USAGE +
    "  Models whose master key a key service holds are released to this sidecar's own identity:\n" +
    KMS_USAGE +
    "  --policy-claims FILE  licence claims (a JSON object) given to the models' policies as input.claims (docs/key-management.md)\n" +
    "  --metrics-port N      serve Prometheus metrics on http://127.0.0.1:N/metrics (off unless given; docs/sidecar.md)\n" +
    "  --metrics-host H      the address the metrics endpoint binds (default 127.0.0.1)\n",
  options: {
    ...RELEASE_SERVE_OPTIONS,
    ...SIDECAR_OPTIONS,
    ...HUB_OPTIONS,
    ...KMS_OPTIONS,
    "policy-claims": { type: "string" },
    "metrics-port": { type: "string" },
    "metrics-host": { type: "string" },
  },
  async run({ values, positionals }) {
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
      const signal = untilSignal();
      const handle = await sidecar.startSidecar({
        socketPath: values.socket ?? sidecar.defaultSocketPath(),
        keys,
        trust,
        allowPlaintext,
        hub: hubSettingsFromArgs(values),
        ...(kms ? { kms } : {}),
        release: servePolicyFromArgs(values),
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
