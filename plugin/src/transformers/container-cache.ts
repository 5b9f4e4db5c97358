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
// In browsers: Cache Storage (`caches`), one cache named CONTAINER_CACHE_NAME, keyed by the file's URL.

/** Where encrypted containers are kept between loads. */
export interface ContainerCache {
  get(url: string): Promise<Uint8Array | undefined>;
  put(url: string, bytes: Uint8Array): Promise<void>;
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
      return hit ? new Uint8Array(await hit.arrayBuffer()) : undefined;
    },
    async put(url, bytes) {
      const headers = { "content-type": "application/octet-stream", "content-length": String(bytes.length) };
      await (await open()).put(cacheUrl(url), new Response(bytes as Uint8Array<ArrayBuffer>, { headers }));
    },
    async delete(url) {
      await (await open()).delete(cacheUrl(url));
    },
  };
}
