// The caller's identity at OpenBao / Vault: a token (read from a file at each use, so that an agent
// can rotate it), an AppRole (role id + secret id read from a file) or a JWT (read from a file at each
// login, e.g. a projected Kubernetes service-account token). Secrets never come from the command line.
// A token obtained by a login is kept in memory only, and renewed by logging in again when it expires.

import { readFile } from "node:fs/promises";
import { KmsError } from "./provider.js";
import type { VaultHttp } from "./vault-http.js";

export interface VaultAuth {
  /** What the identity is, for messages and logs (never a secret). */
  readonly describe: string;
  /** A token to call the service with; `renew` asks for a fresh login (after the service refused the last one). */
  token(http: VaultHttp, renew: boolean): Promise<string>;
  /** Whether `renew` can help (a login method; not a fixed token). */
  readonly canRenew: boolean;
  /** Forgets any token held in memory. */
  clear(): void;
}

async function readSecretFile(path: string, what: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new KmsError("unauthenticated", `cannot read the ${what} file ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`, {
      cause: err,
    });
  }
  const value = text.trim();
  if (!value) throw new KmsError("unauthenticated", `the ${what} file ${path} is empty`);
  return value;
}

/** A fixed token (from $BAO_TOKEN / $VAULT_TOKEN), or one read from `file` at each use. */
export function tokenAuth(source: { token: string } | { file: string }): VaultAuth {
  return {
    describe: "file" in source ? `token from ${source.file}` : "token",
    canRenew: false,
    async token() {
      return "file" in source ? readSecretFile(source.file, "token") : source.token;
    },
    clear() {},
  };
}

interface LoginAnswer {
  auth?: { client_token?: unknown; lease_duration?: unknown } | null;
}

/** Logs in at `auth/MOUNT/login` and keeps the token until the service refuses it (or its lease ends). */
function loginAuth(describe: string, mount: string, body: () => Promise<Record<string, string>>): VaultAuth {
  let held: { token: string; until: number } | undefined;
  return {
    describe,
    canRenew: true,
    async token(http, renew) {
      if (held && !renew && Date.now() < held.until) return held.token;
      held = undefined;
      let answer: LoginAnswer;
      try {
        answer = (await http.request("POST", `auth/${mount}/login`, await body())) as LoginAnswer;
      } catch (err) {
        // A refused login (wrong secret id, bad JWT, unknown role) is an identity problem, not a key refusal.
        if (err instanceof KmsError && (err.reason === "denied" || err.reason === "refused")) {
          throw new KmsError("unauthenticated", `login as ${describe} refused: ${err.message}`, { cause: err });
        }
        throw err;
      }
      const token = answer?.auth?.client_token;
      if (typeof token !== "string" || !token) throw new KmsError("invalid", `login as ${describe}: the key service returned no token`);
      const lease = typeof answer.auth?.lease_duration === "number" ? answer.auth.lease_duration : 0;
      // Log in again a little before the lease ends (0 = no expiry).
      held = { token, until: lease > 0 ? Date.now() + lease * 1000 * 0.9 : Number.POSITIVE_INFINITY };
      return token;
    },
    clear() {
      held = undefined;
    },
  };
}

/** AppRole: the role id is not secret; the secret id is read from a file at each login. */
export function appRoleAuth(options: { roleId: string; secretIdFile: string; mount?: string | undefined }): VaultAuth {
  const mount = options.mount ?? "approle";
  return loginAuth(`AppRole ${options.roleId} at auth/${mount}`, mount, async () => ({
    role_id: options.roleId,
    secret_id: await readSecretFile(options.secretIdFile, "AppRole secret id"),
  }));
}

/** JWT / OIDC (and Kubernetes projected tokens through the jwt method): the JWT is read from a file at each login. */
export function jwtAuth(options: { role: string; jwtFile: string; mount?: string | undefined }): VaultAuth {
  const mount = options.mount ?? "jwt";
  return loginAuth(`JWT role ${options.role} at auth/${mount}`, mount, async () => ({
    role: options.role,
    jwt: await readSecretFile(options.jwtFile, "JWT"),
  }));
}
