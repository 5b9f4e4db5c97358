// Fetching a JWK set from a key service URL: one implementation for Node (keys/sources.ts, behind the
// CLI's --key/--trust) and the browser (transformers/web.ts). Only https://, or plain http:// to a
// loopback address; redirects are refused (a key service that redirects could hand the token and the
// key request to another host); no cookies or other ambient credentials are sent, only the bearer token.

import { CryptoTensorsError } from "../errors.js";
import { parseJwkText, type Key } from "./jwk.js";

export interface JwkSetFetchOptions {
  /** Bearer token sent to the key service. Never logged. */
  token?: string | undefined;
  fetch?: typeof fetch;
}

const LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]"];

/** True for the URLs keys may be fetched from: https://, or http:// to a loopback address. */
export function isAllowedKeyUrl(url: URL): boolean {
  return url.protocol === "https:" || (url.protocol === "http:" && LOOPBACK_HOSTS.includes(url.hostname));
}

/**
 * Fetches and parses the JWK set (or single JWK) at `url`.
 * @throws ERR_CT_KEY_NOT_FOUND (refused URL, unreachable service, HTTP error), ERR_CT_KEY_INVALID (malformed keys)
 */
export async function fetchJwkSet(url: URL, options: JwkSetFetchOptions = {}): Promise<Key[]> {
  if (!isAllowedKeyUrl(url)) {
    throw new CryptoTensorsError("ERR_CT_KEY_NOT_FOUND", `refusing to fetch keys over plain HTTP from ${url.host}: use https://`);
  }
  const where = `${url.origin}${url.pathname}`;
  const headers: Record<string, string> = { accept: "application/jwk-set+json, application/json" };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  const doFetch = options.fetch ?? fetch;
  let res: Response;
  try {
    res = await doFetch(url, { headers, redirect: "error", credentials: "omit" });
  } catch (err) {
    throw new CryptoTensorsError(
      "ERR_CT_KEY_NOT_FOUND",
      `cannot reach key service ${where}: ${(err as Error).cause ?? (err as Error).message}`,
      { cause: err },
    );
  }
  if (!res.ok) {
    const refused = res.status === 401 || res.status === 403;
    throw new CryptoTensorsError(
      "ERR_CT_KEY_NOT_FOUND",
      `key service ${where} answered HTTP ${res.status}${refused ? " (the bearer token was refused)" : ""}`,
      {
        option: refused ? "keyToken" : undefined,
      },
    );
  }
  return parseJwkText(await res.text(), where);
}
