// Reading the files of a model for the hook: local paths through the platform, URLs with fetch (the
// platform's default headers, e.g. the Hub token, then the caller's). A 404 is "not here", not an error.

import { CryptoTensorsError } from "../errors.js";
import type { FetchLike, InstallOptions, Platform, TransformersEnv } from "./core.js";
import { isHttpUrl } from "./request-keys.js";

/** Reads one model file by request key; undefined when it does not exist. */
export type ModelFileReader = (key: string) => Promise<Uint8Array | undefined>;

export function modelFileReader(env: TransformersEnv, options: InstallOptions, platform: Platform): ModelFileReader {
  const doFetch: FetchLike = (url, init) =>
    (options.fetch ?? env.fetch ?? ((u: string, i?: RequestInit) => globalThis.fetch(u, i)))(url, init);
  return async (key) => {
    if (!isHttpUrl(key)) return platform.readLocal(key);
    const headers = { ...(platform.defaultHeaders?.(key) ?? {}), ...(options.headers ?? {}) };
    let res: Response;
    try {
      res = await doFetch(key, { headers });
    } catch (err) {
      throw new CryptoTensorsError("ERR_CT_IO", `cannot fetch ${key}: ${(err as Error).message}`, { cause: err });
    }
    if (res.status === 404) return undefined;
    if (!res.ok) throw new CryptoTensorsError("ERR_CT_IO", `cannot fetch ${key}: HTTP ${res.status}`);
    return new Uint8Array(await res.arrayBuffer());
  };
}
