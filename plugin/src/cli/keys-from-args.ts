// Turning CLI key options into keys: --key / --sign-key / --trust / --trust-store accept a path,
// file://…, env: (CRYPTOTENSOR_KEYS) or env:NAME, https://… (with --key-token or $CTENSORS_KEY_TOKEN),
// or inline JSON.

import { CryptoTensorsError } from "../errors.js";
import type { EncryptionKey, Key, SigningKey } from "../keys/jwk.js";
import { loadAllKeys, loadKeys, type KeySourceOptions } from "../keys/sources.js";
import { TrustStore } from "../keys/trust.js";

export function sourceOptions(token: string | undefined): KeySourceOptions {
  return token ? { token } : {};
}

/** How a key source is named in messages: never the text of an inline JWK, which may hold a secret. */
function describeSpec(spec: string): string {
  return spec.trim().startsWith("{") ? "(inline JWK)" : spec;
}

export async function loadKeyList(specs: readonly string[] | undefined, token?: string): Promise<Key[]> {
  return loadAllKeys(specs ?? [], sourceOptions(token));
}

/** Exactly one encryption key from one source (for encrypt/rewrap). */
export async function loadOneEncryptionKey(spec: string | undefined, option: string, token?: string): Promise<EncryptionKey> {
  if (!spec) throw new TypeError(`${option} is required`);
  const keys = (await loadKeys(spec, sourceOptions(token))).filter((k): k is EncryptionKey => k.kind === "enc");
  if (keys.length !== 1) {
    throw new CryptoTensorsError("ERR_CT_KEY_INVALID", `${option} ${describeSpec(spec)} must hold exactly one encryption key ("kty":"oct"), found ${keys.length}`);
  }
  return keys[0]!;
}

/** Exactly one private signing key. */
export async function loadSigningKey(spec: string | undefined, token?: string): Promise<SigningKey> {
  if (!spec) throw new TypeError("--sign-key is required");
  const keys = (await loadKeys(spec, sourceOptions(token))).filter((k): k is SigningKey => k.kind === "sign");
  if (keys.length !== 1) throw new CryptoTensorsError("ERR_CT_KEY_INVALID", `--sign-key ${describeSpec(spec)} must hold exactly one Ed25519 key, found ${keys.length}`);
  if (!keys[0]!.d) throw new CryptoTensorsError("ERR_CT_KEY_INVALID", `--sign-key ${describeSpec(spec)} is a public key: signing needs the private key (sign.jwk)`);
  return keys[0]!;
}

export async function loadTrust(trust: readonly string[] | undefined, trustStore: readonly string[] | undefined, token?: string): Promise<TrustStore> {
  return TrustStore.load([...(trust ?? []), ...(trustStore ?? [])], sourceOptions(token));
}

/**
 * The sidecar's socket, key and trust options, shared by serve and vllm (which starts serve). The sidecar
 * serves only signed, fully encrypted models unless --allow-plaintext; --require-encrypted (the default)
 * is still accepted.
 */
export const SIDECAR_OPTIONS = {
  socket: { type: "string" },
  key: { type: "string", multiple: true },
  keys: { type: "string", multiple: true },
  trust: { type: "string", multiple: true },
  "trust-store": { type: "string", multiple: true },
  "require-encrypted": { type: "boolean", default: false },
  "allow-plaintext": { type: "boolean", default: false },
  "key-token": { type: "string" },
} as const;
