// Turning CLI key options into keys: --key / --sign-key / --trust / --trust-store accept a path,
// file://…, env: (CRYPTOTENSOR_KEYS) or env:NAME, https://… (with --key-token or $CTENSORS_KEY_TOKEN),
// or inline JSON. Messages name the option, never the value given to it (it may be a key).

import { CryptoTensorsError, usageError } from "../errors.js";
import type { EncryptionKey, Key, SigningKey } from "../keys/jwk.js";
import { loadKeys, type KeySourceOptions } from "../keys/sources.js";
import { TrustStore } from "../keys/trust.js";
import type { CommandOptions } from "./command.js";

export function sourceOptions(token: string | undefined, label?: string): KeySourceOptions {
  return { ...(token ? { token } : {}), ...(label ? { label } : {}) };
}

/** The keys of every source given to `option` (e.g. "--key"), in order. */
async function loadFrom(specs: readonly string[] | undefined, option: string, token?: string): Promise<Key[]> {
  const all: Key[] = [];
  for (const spec of specs ?? []) all.push(...(await loadKeys(spec, sourceOptions(token, option))));
  return all;
}

/** The keys of every source given to `option` (default --key), in order. */
export async function loadKeyList(specs: readonly string[] | undefined, token?: string, option = "--key"): Promise<Key[]> {
  return loadFrom(specs, option, token);
}

/** Exactly one encryption key from one source (for encrypt/rewrap). */
export async function loadOneEncryptionKey(spec: string | undefined, option: string, token?: string): Promise<EncryptionKey> {
  if (!spec) throw usageError(`${option} is required`);
  const keys = (await loadKeys(spec, sourceOptions(token, option))).filter((k): k is EncryptionKey => k.kind === "enc");
  if (keys.length !== 1) {
    throw new CryptoTensorsError(
      "ERR_CT_KEY_INVALID",
      `${option} must hold exactly one encryption key ("kty":"oct"), found ${keys.length}`,
    );
  }
  return keys[0]!;
}

/** Exactly one private signing key. */
export async function loadSigningKey(spec: string | undefined, token?: string): Promise<SigningKey> {
  if (!spec) throw usageError("--sign-key is required");
  const keys = (await loadKeys(spec, sourceOptions(token, "--sign-key"))).filter((k): k is SigningKey => k.kind === "sign");
  if (keys.length !== 1)
    throw new CryptoTensorsError("ERR_CT_KEY_INVALID", `--sign-key must hold exactly one Ed25519 key, found ${keys.length}`);
  if (!keys[0]!.d)
    throw new CryptoTensorsError("ERR_CT_KEY_INVALID", "--sign-key is a public key: signing needs the private key (sign.jwk)");
  return keys[0]!;
}

export async function loadTrust(
  trust: readonly string[] | undefined,
  trustStore: readonly string[] | undefined,
  token?: string,
): Promise<TrustStore> {
  const given = [
    ...(await loadFrom(trust, "--trust", token)).map((key) => ({ key, option: "--trust" })),
    ...(await loadFrom(trustStore, "--trust-store", token)).map((key) => ({ key, option: "--trust-store" })),
  ];
  // A key set may hold both kinds (`env:`): only sources with no signing key at all are a mistake.
  const secret = given.find((g) => g.key.kind === "enc");
  const signing = given.some((g) => g.key.kind === "sign");
  for (const { key } of given) if (key.kind === "enc") key.k.fill(0); // trust keeps public keys only
  if (secret && !signing) {
    throw usageError(
      `${secret.option} was given a secret encryption key ("kty":"oct", such as enc.jwk), not a public signing key: ` +
        `trust takes the publisher's public key (sign.pub.jwk); the decryption key goes to --key`,
      "trust",
    );
  }
  return new TrustStore(given.map((g) => g.key).filter((k) => k.kind === "sign"));
}

/** For --help of the commands that take keys. */
export const KEY_SOURCES_NOTE =
  "Key options take a key source: a path or file://… (a JWK or a JWK set), env: ($CRYPTOTENSOR_KEYS) or env:NAME, " +
  "https://… (with --key-token) or an inline JWK (docs/cli.md, Key sources).";

/** The options every command that reads keys from a key server has. */
export const KEY_TOKEN_OPTION = {
  "key-token": {
    type: "string",
    value: "T",
    description: "bearer token for https:// key sources",
    defaultText: "$CTENSORS_KEY_TOKEN",
  },
} as const satisfies CommandOptions;

/** --trust and --trust-store, as verify, decrypt, rewrap, sign-release and the sidecar take them. */
export const TRUST_OPTIONS = {
  trust: {
    type: "string",
    multiple: true,
    value: "PUB_JWK",
    description: "a trusted signer's public key (sign.pub.jwk); headers and releases are verified only with these",
  },
  "trust-store": { type: "string", multiple: true, value: "JWKS", description: "a set of trusted signer public keys" },
} as const satisfies CommandOptions;

/**
 * The sidecar's socket, key and trust options, shared by serve and vllm (which starts serve). The sidecar
 * serves only signed, fully encrypted models unless --allow-plaintext; --require-encrypted (the default)
 * is still accepted.
 */
export const SIDECAR_OPTIONS = {
  socket: {
    type: "string",
    value: "PATH",
    description: "the sidecar's unix socket (its token file is PATH.token); its folder must be private to you",
    defaultText: "$CTENSORS_SOCKET, else $XDG_RUNTIME_DIR/ctensors/sidecar.sock, else /tmp/ctensors-<uid>/sidecar.sock",
  },
  key: { type: "string", multiple: true, value: "JWK", description: "a master key (enc.jwk) of the models to serve" },
  keys: { type: "string", multiple: true, value: "JWKS", description: "a set of master keys" },
  ...TRUST_OPTIONS,
  "require-encrypted": {
    type: "boolean",
    default: false,
    description: "serve only models signed by a trusted key with every tensor encrypted (the default; kept for scripts)",
  },
  "allow-plaintext": {
    type: "boolean",
    default: false,
    description: "also serve plain and partially encrypted models (Hub repos declared confidential stay strict)",
  },
  "shm-dir": {
    type: "string",
    value: "DIR",
    description:
      "where shared-memory regions are created: a tmpfs, or a hugetlbfs mount of reserved huge pages (cheaper loads; docs/sidecar.md)",
    defaultText: "/dev/shm",
  },
  ...KEY_TOKEN_OPTION,
} as const satisfies CommandOptions;
