// Where keys come from (docs/format.md §6.2): a JWK given directly, a JWK / JWK-set file, the
// reference's CRYPTOTENSOR_KEYS environment variable, or an HTTPS JWK-set URL with a bearer token.

import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { CryptoTensorsError } from "../errors.js";
import { parseJwkOrSet, parseJwkText, type Key } from "./jwk.js";
import { fetchJwkSet } from "./jwk-set-url.js";

/** The environment variable the reference's EnvKeyProvider reads. */
export const KEYS_ENV = "CRYPTOTENSOR_KEYS";
/** Bearer token for HTTPS key URLs when none is given explicitly. */
export const KEY_TOKEN_ENV = "CTENSORS_KEY_TOKEN";

export interface KeySourceOptions {
  /**
   * How messages name the source (e.g. the option it came from). The source text itself is never
   * quoted before it has been read as a file: a key pasted where a path belongs must not be echoed.
   */
  label?: string | undefined;
  /** Bearer token sent to HTTPS key URLs (default: $CTENSORS_KEY_TOKEN). Never logged. */
  token?: string | undefined;
  env?: NodeJS.ProcessEnv;
  fetch?: typeof fetch;
}

/** A key source as the user wrote it: a path, `file://…`, `env:` / `env:NAME`, `https://…`, or inline JSON. */
export type KeySpec = string | object;

/**
 * Loads the keys named by one source.
 * @throws ERR_CT_KEY_NOT_FOUND (source missing/unreachable), ERR_CT_KEY_INVALID (malformed keys)
 */
export async function loadKeys(spec: KeySpec, options: KeySourceOptions = {}): Promise<Key[]> {
  const label = options.label ?? "key source";
  if (typeof spec === "object") return parseJwkOrSet(spec, label);
  const env = options.env ?? process.env;
  const trimmed = spec.trim();
  if (trimmed.startsWith("{")) return parseJwkText(trimmed, `${label} (inline JWK)`);
  if (trimmed === "env" || trimmed.startsWith("env:")) {
    const name = trimmed.slice(4) || KEYS_ENV;
    const text = env[name];
    if (!text) throw new CryptoTensorsError("ERR_CT_KEY_NOT_FOUND", `${label}: environment variable ${name} is not set`);
    return parseJwkText(text, `$${name}`);
  }
  if (/^https?:\/\//i.test(trimmed)) return loadKeysFromUrl(new URL(trimmed), options);
  const path = trimmed.startsWith("file://") ? fileURLToPath(trimmed) : trimmed;
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    // Not `path`: it may be a key given where a path belongs.
    const code = (err as NodeJS.ErrnoException).code ?? "unreadable";
    throw new CryptoTensorsError(
      "ERR_CT_KEY_NOT_FOUND",
      `${label}: cannot read the key file (${code}); a key source is a JWK file path, file://..., env:NAME, https://... or inline JSON`,
      { cause: Object.assign(new Error(code), { code }) },
    );
  }
  return parseJwkText(text, path);
}

function loadKeysFromUrl(url: URL, options: KeySourceOptions): Promise<Key[]> {
  return fetchJwkSet(url, { token: options.token ?? (options.env ?? process.env)[KEY_TOKEN_ENV], fetch: options.fetch });
}

/** Loads and concatenates several sources, in order. */
export async function loadAllKeys(specs: readonly KeySpec[], options: KeySourceOptions = {}): Promise<Key[]> {
  const all: Key[] = [];
  for (const s of specs) all.push(...(await loadKeys(s, options)));
  return all;
}
