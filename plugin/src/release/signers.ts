// Who signs a release manifest. Always the publisher's Ed25519 key (the same key that signs shard
// headers; ctensors verifies it against --trust). Optionally also an ECDSA key (P-256/384/521, PEM)
// as the envelope's first signature: the only kind of key the `model-signing` package's key
// verifier accepts (`model_signing verify key --public_key`), so that standard OMS tools verify the
// same file. ctensors itself never trusts the ECDSA signature.

import { createHash, createPrivateKey, createPublicKey, sign as nodeSign, type KeyObject } from "node:crypto";
import { readFile } from "node:fs/promises";
import { CryptoTensorsError } from "../errors.js";
import { ed25519Sign } from "../crypto/signature.js";
import type { SigningKey } from "../keys/jwk.js";
import { ED25519_KEYID_PREFIX } from "./manifest-open.js";
import { pae, type DsseSignature } from "./oms.js";

export { ED25519_KEYID_PREFIX } from "./manifest-open.js";

const EC_HASH: Record<string, string> = { prime256v1: "sha256", secp384r1: "sha384", secp521r1: "sha512" };

/** An ECDSA private key for OMS interoperability. */
export interface OmsKey {
  key: KeyObject;
  hash: string;
}

/** Loads a PEM EC private key (PKCS#8 or SEC1) on a curve OMS verifiers accept. @throws ERR_CT_KEY_INVALID */
export async function loadOmsKey(path: string): Promise<OmsKey> {
  let key: KeyObject;
  try {
    key = createPrivateKey(await readFile(path));
  } catch (err) {
    throw new CryptoTensorsError(
      "ERR_CT_KEY_INVALID",
      `--oms-key ${path}: not a PEM private key (${(err as NodeJS.ErrnoException).code ?? "unreadable"})`,
      { cause: err },
    );
  }
  const curve = key.asymmetricKeyDetails?.namedCurve ?? "";
  if (key.asymmetricKeyType !== "ec" || !EC_HASH[curve]) {
    throw new CryptoTensorsError(
      "ERR_CT_KEY_INVALID",
      `--oms-key ${path}: must be an ECDSA key on P-256, P-384 or P-521 (the keys OMS verifiers accept), got ${key.asymmetricKeyType} ${curve}`.trim(),
    );
  }
  return { key, hash: EC_HASH[curve]! };
}

/** sha256 (hex) of a public key's PEM text: the OMS bundle's key hint. */
export function pemHint(publicKey: KeyObject): string {
  return createHash("sha256")
    .update(publicKey.export({ type: "spki", format: "pem" }) as string)
    .digest("hex");
}

const ED25519_SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

export function ed25519PublicKeyObject(x: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, x]), format: "der", type: "spki" });
}

/** Signs the envelope: [ECDSA (OMS), Ed25519 (ctensors)] or [Ed25519]; returns the signatures and key hint. */
export function signEnvelope(
  payloadType: string,
  payload: Uint8Array,
  signKey: SigningKey,
  omsKey?: OmsKey,
): { signatures: DsseSignature[]; keyHint: string } {
  if (!signKey.d) throw new CryptoTensorsError("ERR_CT_KEY_INVALID", "signing a release needs the private signing key");
  const message = pae(payloadType, payload);
  const ed: DsseSignature = { sig: ed25519Sign(signKey.d, message), keyid: `${ED25519_KEYID_PREFIX}${signKey.kid ?? ""}` };
  if (!omsKey) return { signatures: [ed], keyHint: pemHint(ed25519PublicKeyObject(signKey.x)) };
  const ecdsa: DsseSignature = { sig: new Uint8Array(nodeSign(omsKey.hash, message, omsKey.key)), keyid: "" };
  return { signatures: [ecdsa, ed], keyHint: pemHint(createPublicKey(omsKey.key)) };
}
