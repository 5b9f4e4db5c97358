// Reading the files of a model for the hook: local paths through the platform, URLs with fetch (the
// platform's default headers, e.g. the Hub token, then the caller's). A 404 is "not here", not an error.
// Small files are read whole (ModelFileReader); a container is read as a stream (ModelFileStreamer), so
// that it is decrypted as it arrives and never held whole.

import { CryptoTensorsError } from "../errors.js";
import type { FetchLike, InstallOptions, Platform, TransformersEnv } from "./core.js";
import { isHttpUrl } from "./request-keys.js";

/** Reads one model file by request key; undefined when it does not exist. */
export type ModelFileReader = (key: string) => Promise<Uint8Array | undefined>;

/** Opens one model file by request key as a stream of its bytes; undefined when it does not exist. */
export type ModelFileStreamer = (key: string) => Promise<ReadableStream<Uint8Array> | undefined>;

/** A stream of `bytes` in one chunk. */
export function bytesStream(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      if (bytes.length) controller.enqueue(bytes);
      controller.close();
    },
  });
}

/** The fetched Response of a model file URL, undefined on a 404. @throws ERR_CT_IO */
function urlFetcher(env: TransformersEnv, options: InstallOptions, platform: Platform): (key: string) => Promise<Response | undefined> {
  const doFetch: FetchLike = (url, init) =>
    (options.fetch ?? env.fetch ?? ((u: string, i?: RequestInit) => globalThis.fetch(u, i)))(url, init);
  return async (key) => {
    const headers = { ...(platform.defaultHeaders?.(key) ?? {}), ...(options.headers ?? {}) };
    let res: Response;
    try {
      res = await doFetch(key, { headers });
    } catch (err) {
      throw new CryptoTensorsError("ERR_CT_IO", `cannot fetch ${key}: ${(err as Error).message}`, { cause: err });
    }
    if (res.status === 404) return undefined;
    if (!res.ok) throw new CryptoTensorsError("ERR_CT_IO", `cannot fetch ${key}: HTTP ${res.status}`);
    return res;
  };
}

export function modelFileReader(env: TransformersEnv, options: InstallOptions, platform: Platform): ModelFileReader {
  const fetchUrl = urlFetcher(env, options, platform);
  return async (key) => {
    if (!isHttpUrl(key)) return platform.readLocal(key);
    const res = await fetchUrl(key);
    return res ? new Uint8Array(await res.arrayBuffer()) : undefined;
  };
}

export function modelFileStreamer(env: TransformersEnv, options: InstallOptions, platform: Platform): ModelFileStreamer {
  const fetchUrl = urlFetcher(env, options, platform);
  return async (key) => {
    if (!isHttpUrl(key)) {
      if (platform.streamLocal) return platform.streamLocal(key);
      const bytes = await platform.readLocal(key);
      return bytes ? bytesStream(bytes) : undefined;
    }
    const res = await fetchUrl(key);
    return res ? (res.body ?? bytesStream(new Uint8Array(0))) : undefined;
  };
}
