// The HTTP API of OpenBao / HashiCorp Vault (the same for both): JSON over HTTP(S), the token in
// X-Vault-Token, errors as {"errors": [...]}. Each request has a timeout; connection failures, timeouts,
// 429 and 5xx (except a sealed service, which does not unseal by waiting) are retried a bounded number
// of times with exponential backoff and jitter. Failures become KmsError with a reason.
//
// Written on fetch rather than with a client library: the npm Vault clients (node-vault, …) wrap
// `request`-era HTTP stacks without per-request timeouts or typed errors, and we use five endpoints.

import { usageError } from "../errors.js";
import { KmsError, type KmsFailure } from "./provider.js";

export interface VaultHttpOptions {
  /** Base address, e.g. `https://bao.internal:8200` (plain http only to loopback). */
  address: string;
  /** Per-attempt timeout (default 5000 ms). */
  timeoutMs?: number | undefined;
  /** Extra attempts after the first for transient failures (default 2, so at most 3 requests). */
  retries?: number | undefined;
  /** First backoff delay; doubled each retry, with up to 50% jitter (default 200 ms). */
  backoffMs?: number | undefined;
  /** OpenBao/Vault Enterprise namespace, sent as X-Vault-Namespace. */
  namespace?: string | undefined;
  fetch?: typeof fetch;
}

export const DEFAULT_TIMEOUT_MS = 5000;
export const DEFAULT_RETRIES = 2;
export const DEFAULT_BACKOFF_MS = 200;

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);

/** Checks and normalises a service address. @throws TypeError */
export function checkAddress(address: string): URL {
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    throw usageError(`key service address ${JSON.stringify(address)} is not a URL (expected https://HOST:PORT)`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw usageError(`key service address ${url.origin}: expected https://`);
  if (url.protocol === "http:" && !LOOPBACK.has(url.hostname)) {
    throw usageError(`refusing to talk to the key service ${url.host} over plain HTTP: use https:// (plain http only to loopback)`);
  }
  return url;
}

/** A failed answer: the service's error strings, joined (they never hold a token or key). */
function serviceErrors(body: unknown): string {
  const errs = (body as { errors?: unknown } | null)?.errors;
  if (!Array.isArray(errs) || errs.length === 0) return "";
  return errs
    .map((e) =>
      String(e)
        .replace(/\s+/g, " ")
        .replace(/^1 error occurred: \* /, "")
        .trim(),
    )
    .join("; ")
    .slice(0, 300);
}

export class VaultHttp {
  readonly address: URL;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly backoffMs: number;
  private readonly doFetch: typeof fetch;

  constructor(private readonly options: VaultHttpOptions) {
    this.address = checkAddress(options.address);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.retries = options.retries ?? DEFAULT_RETRIES;
    this.backoffMs = options.backoffMs ?? DEFAULT_BACKOFF_MS;
    this.doFetch = options.fetch ?? fetch;
    if (!(this.timeoutMs > 0) || !Number.isSafeInteger(this.retries) || this.retries < 0)
      throw new TypeError("timeout must be positive and retries a non-negative integer");
  }

  /** Where errors say they went: the origin and path, never a query or a token. */
  describe(path: string): string {
    return `${this.address.origin}/v1/${path}`;
  }

  /**
   * One API call (`path` without the leading /v1/). Returns the parsed JSON body (null for 204).
   * @throws KmsError
   */
  async request(method: "GET" | "POST" | "PUT", path: string, body?: unknown, token?: string): Promise<unknown> {
    const url = new URL(`/v1/${path}`, this.address);
    const headers: Record<string, string> = { accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (token) headers["x-vault-token"] = token;
    if (this.options.namespace) headers["x-vault-namespace"] = this.options.namespace;
    const where = this.describe(path);
    let last: KmsError | undefined;
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      if (attempt > 0) await sleep(this.backoffMs * 2 ** (attempt - 1) * (1 + Math.random() * 0.5));
      let res: Response;
      try {
        res = await this.doFetch(url, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          redirect: "error",
          signal: AbortSignal.timeout(this.timeoutMs),
        });
      } catch (err) {
        const timedOut = (err as Error).name === "TimeoutError" || (err as Error).name === "AbortError";
        const cause = (err as Error & { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
        last = timedOut
          ? new KmsError("timeout", `key service ${where} did not answer within ${this.timeoutMs} ms (${attempt + 1} attempt(s))`, {
              cause: err,
            })
          : new KmsError("unreachable", `cannot reach key service ${where}: ${cause} (${attempt + 1} attempt(s))`, { cause: err });
        continue;
      }
      let parsed: unknown = null;
      let text = "";
      try {
        text = await res.text();
        parsed = text ? JSON.parse(text) : null;
      } catch (err) {
        if ((err as Error).name === "TimeoutError" || (err as Error).name === "AbortError") {
          last = new KmsError("timeout", `key service ${where} did not finish its answer within ${this.timeoutMs} ms`, { cause: err });
          continue;
        }
        if (res.ok) throw new KmsError("invalid", `key service ${where} answered HTTP ${res.status} with a body that is not JSON`);
      }
      if (res.ok) return parsed;
      const detail = serviceErrors(parsed);
      const failure = classify(res.status, detail);
      const error = new KmsError(
        failure,
        `key service ${where} answered HTTP ${res.status}${detail ? `: ${detail}` : ""}${HINTS[failure] ?? ""}`,
      );
      if (failure !== "unavailable") throw error;
      last = new KmsError("unavailable", `${error.message} (${attempt + 1} attempt(s))`);
    }
    throw last!;
  }
}

const HINTS: Partial<Record<KmsFailure, string>> = {
  sealed: " (the service is sealed: unseal it, or wait for auto-unseal)",
  denied: " (the caller's token is revoked or expired, or no policy grants it this key)",
};

function classify(status: number, detail: string): KmsFailure {
  if (status === 503 && /sealed/i.test(detail)) return "sealed";
  if (status === 429 || status >= 500) return "unavailable";
  if (status === 401 || status === 403) return "denied";
  return "refused";
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
