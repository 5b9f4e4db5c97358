// The key-service options shared by encrypt, rewrap and serve: where the service is, and who we are
// there. Secrets (token, AppRole secret id, JWT) are read from files or the environment, never taken
// from the command line, where other local users could read them.

import { usageError } from "../errors.js";
import type { AeadAlgorithm } from "../crypto/aead-params.js";
import type { EncryptionKey } from "../keys/jwk.js";
import { isKmsReference } from "./provider.js";
import { appRoleAuth, jwtAuth, tokenAuth, type VaultAuth } from "./vault-auth.js";
import { DEFAULT_RETRIES, DEFAULT_TIMEOUT_MS } from "./vault-http.js";
import { VaultTransitProvider } from "./vault-transit.js";

const KMS = "Key service options (docs/key-management.md)";

/** With descriptions for `ctensors … --help` (cli/help.ts); none has a parseArgs default (hasKmsOptions). */
export const KMS_OPTIONS = {
  "kms-address": {
    type: "string",
    value: "URL",
    description: "the key service (OpenBao / Vault)",
    defaultText: "$BAO_ADDR, else $VAULT_ADDR",
    group: KMS,
  },
  "kms-token-file": {
    type: "string",
    value: "FILE",
    description: "identity: a file holding a key-service token",
    defaultText: "$BAO_TOKEN, else $VAULT_TOKEN, when no other identity is given",
    group: KMS,
  },
  "kms-role-id": { type: "string", value: "ID", description: "identity: an AppRole role id (with --kms-secret-id-file)", group: KMS },
  "kms-secret-id-file": { type: "string", value: "FILE", description: "identity: a file holding the AppRole secret id", group: KMS },
  "kms-jwt-role": { type: "string", value: "ROLE", description: "identity: a JWT auth role (with --kms-jwt-file)", group: KMS },
  "kms-jwt-file": { type: "string", value: "FILE", description: "identity: a file holding the JWT (re-read at each login)", group: KMS },
  "kms-auth-mount": {
    type: "string",
    value: "PATH",
    description: "the auth method's mount path",
    defaultText: "approle or jwt, by the identity",
    group: KMS,
  },
  "kms-timeout-ms": {
    type: "string",
    value: "N",
    description: "timeout of each key-service request, in ms",
    defaultText: String(DEFAULT_TIMEOUT_MS),
    group: KMS,
  },
  "kms-retries": {
    type: "string",
    value: "N",
    description: "retries of a failed key-service request",
    defaultText: String(DEFAULT_RETRIES),
    group: KMS,
  },
} as const;

type KmsOptionName = keyof typeof KMS_OPTIONS;

/** The key-service options' values (string options, none with a default), as parseArgs gives them. */
export type KmsValues = { readonly [K in KmsOptionName]?: string | undefined };

const KMS_OPTION_NAMES = Object.keys(KMS_OPTIONS) as KmsOptionName[];

/** Whether any key-service option was given. */
export function hasKmsOptions(values: KmsValues): boolean {
  return KMS_OPTION_NAMES.some((name) => values[name] !== undefined);
}

function nonNegativeInt(value: string | undefined, option: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw usageError(`${option} must be a non-negative integer, got ${value}`);
  return n;
}

function authFromArgs(values: KmsValues, env: NodeJS.ProcessEnv): VaultAuth {
  const mount = values["kms-auth-mount"];
  const roleId = values["kms-role-id"];
  const secretIdFile = values["kms-secret-id-file"];
  const jwtRole = values["kms-jwt-role"];
  const jwtFile = values["kms-jwt-file"];
  const tokenFile = values["kms-token-file"];
  const methods = [roleId || secretIdFile ? "AppRole" : "", jwtRole || jwtFile ? "JWT" : "", tokenFile ? "token" : ""].filter(Boolean);
  if (methods.length > 1) throw usageError(`choose one key-service identity, got ${methods.join(" and ")}`);
  if (roleId || secretIdFile) {
    if (!roleId || !secretIdFile) throw usageError("AppRole needs both --kms-role-id and --kms-secret-id-file");
    return appRoleAuth({ roleId, secretIdFile, mount });
  }
  if (jwtRole || jwtFile) {
    if (!jwtRole || !jwtFile) throw usageError("JWT login needs both --kms-jwt-role and --kms-jwt-file");
    return jwtAuth({ role: jwtRole, jwtFile, mount });
  }
  if (tokenFile) return tokenAuth({ file: tokenFile });
  const token = env.BAO_TOKEN ?? env.VAULT_TOKEN;
  if (token) return tokenAuth({ token });
  throw usageError(
    "no key-service identity: pass --kms-token-file, --kms-role-id with --kms-secret-id-file, or --kms-jwt-role with --kms-jwt-file (or set $BAO_TOKEN)",
  );
}

/**
 * The Vault Transit provider the options describe.
 * @param requireAddress a sidecar sends its credentials only to an address it was given, never to one read from a model
 */
export function kmsProviderFromArgs(
  values: KmsValues,
  options: { env?: NodeJS.ProcessEnv; requireAddress: boolean },
): VaultTransitProvider {
  const env = options.env ?? process.env;
  const address = values["kms-address"] ?? env.BAO_ADDR ?? env.VAULT_ADDR;
  if (!address && options.requireAddress) throw usageError("the key service needs an address: --kms-address URL (or $BAO_ADDR)");
  return new VaultTransitProvider({
    address,
    auth: authFromArgs(values, env),
    timeoutMs: nonNegativeInt(values["kms-timeout-ms"], "--kms-timeout-ms") || undefined,
    retries: nonNegativeInt(values["kms-retries"], "--kms-retries"),
    namespace: env.BAO_NAMESPACE ?? env.VAULT_NAMESPACE,
  });
}

/**
 * A fresh master key generated and wrapped by the key service `reference` names (encrypt --kms,
 * rewrap --new-kms). The caller zeroes `k` when done.
 */
export async function newKmsMasterKey(
  reference: string,
  values: KmsValues,
  option: string,
  alg: AeadAlgorithm = "aes256gcm",
): Promise<EncryptionKey> {
  if (!isKmsReference(reference))
    throw usageError(
      `${option} expects a key-service reference vault-transit://HOST:PORT/MOUNT/keys/NAME, got ${JSON.stringify(reference)}`,
    );
  return kmsProviderFromArgs(values, { requireAddress: false }).generate(reference, alg);
}
