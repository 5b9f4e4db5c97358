// A cache of ENCRYPTED containers (`X.onnx.cryptotensors`), so that a second page load does not
// download the model again: transformers.js' own browser cache is off under the hook (it would store
// the decrypted files), and the container is what is safe at rest — ciphertext, whose header is
// signed and whose tensors are authenticated when they are decrypted. Nothing decrypted is ever put here.
//
// A cached container is used as if it had just been fetched: verified, checked against the release
// manifest (fetched fresh each load: a newer release makes the cached copy fail) and decrypted. When it
// fails for any reason, the hook drops it and fetches the file once more (model-store.ts), so a stale
// or damaged copy costs one download, never a wrong model.
//
// Containers go in and out as streams, never as one buffer: a fetched one is written while it is being
// decrypted (cache-tee.ts) and a cached one is decrypted as it is read back.
//
// In browsers: Cache Storage (`caches`), one cache named CONTAINER_CACHE_NAME, keyed by the file's URL.

import { bytesStream } from "./model-files.js";

/** Where encrypted containers are kept between loads. */
export interface ContainerCache {
  /** The cached container's bytes; undefined when there is none. */
  get(url: string): Promise<ReadableStream<Uint8Array> | undefined>;
  /** Stores what `body` gives, once it closes; rejects and stores nothing when `body` fails. */
  put(url: string, body: ReadableStream<Uint8Array>): Promise<void>;
  delete(url: string): Promise<void>;
}

export const CONTAINER_CACHE_NAME = "ctensors-encrypted-containers-v1";

/** Cache Storage's key for a file: an absolute URL (a local-path request is relative to the page). */
function cacheUrl(url: string): string {
  return new URL(url, (globalThis as { location?: { href: string } }).location?.href).href;
}

/** What is used of Cache Storage (the package is built without the DOM types). */
interface CacheLike {
  match(url: string): Promise<Response | undefined>;
  put(url: string, response: Response): Promise<void>;
  delete(url: string): Promise<boolean>;
}

/** The Cache Storage of this page or worker, or undefined where there is none (Node, an insecure context). */
export function cacheStorageContainers(): ContainerCache | undefined {
  const storage = (globalThis as { caches?: { open(name: string): Promise<CacheLike> } }).caches;
  if (!storage) return undefined;
  const open = () => storage.open(CONTAINER_CACHE_NAME);
  return {
    async get(url) {
      const hit = await (await open()).match(cacheUrl(url));
      return hit ? (hit.body ?? bytesStream(new Uint8Array(0))) : undefined;
    },
    async put(url, body) {
      const headers = { "content-type": "application/octet-stream" };
      await (await open()).put(cacheUrl(url), new Response(body as ReadableStream<Uint8Array<ArrayBuffer>>, { headers }));
    },
    async delete(url) {
      await (await open()).delete(cacheUrl(url));
    },
  };
}
