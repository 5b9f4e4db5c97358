// What a sidecar started with these keys and this trust could serve, said before it starts: `ctensors
// serve` never starts silently with a setup that refuses every model. No trusted signer under the
// secure default (only models signed by a trusted key, every tensor encrypted) serves nothing at all:
// that is a usage error. A setup that serves only some models starts, with a warning naming the
// options that complete it. (No master key is not "nothing": a header's file:// jku names a key set
// the sidecar reads, as the reference does, and a key service can release keys.)

import { usageError } from "../errors.js";

export interface ServeSetup {
  /** Trusted signer keys (--trust, --trust-store). */
  trusted: number;
  /** Master keys (--key, --keys). */
  keys: number;
  /** A key service identity was given (--kms-*). */
  kms: boolean;
  allowPlaintext: boolean;
}

const TRUST_FIX = "pass the publisher's public key with --trust sign.pub.jwk or --trust-store JWKS";
const KEY_FIX =
  "pass the master key with --key enc.jwk or --keys JWKS, or a key-service identity (--kms-address with --kms-token-file, --kms-role-id or --kms-jwt-role)";

/**
 * The warnings for a setup that serves only some models (none: it is complete).
 * @throws ERR_CT_USAGE when it would serve no model at all
 */
export function checkServeSetup(setup: ServeSetup): string[] {
  const noKey = setup.keys === 0 && !setup.kms;
  if (setup.trusted === 0 && !setup.allowPlaintext) {
    throw usageError(
      "no trusted signer: the sidecar serves only models signed by a trusted key with every tensor encrypted, so it would refuse every model; " +
        `${TRUST_FIX}${noKey ? `, and ${KEY_FIX.replace("pass ", "")}` : ""} (--allow-plaintext serves unsigned plain models instead)`,
    );
  }
  const warnings: string[] = [];
  if (setup.trusted === 0)
    warnings.push(`no trusted signer: only unsigned plain models can be served, every signed model is refused; ${TRUST_FIX}`);
  if (noKey)
    warnings.push(`no master key: encrypted tensors can be served only from files whose header names a file:// key set (jku); ${KEY_FIX}`);
  return warnings;
}
