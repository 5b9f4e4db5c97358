// `import { installCryptoTensors } from "ctensors/transformers"` in a browser (the package's `browser`
// export, bundled by plugin/scripts/build-web.mjs): the same hook as in Node (core.ts) with WebCrypto
// AES-GCM and SHA-256, @noble/ciphers ChaCha20-Poly1305 and @noble/curves Ed25519.
// Keys: a JWK or JWK set object, inline JSON text, or a JWK-set URL fetched with an optional bearer
// token (`keyToken`). There are no key files or environment variables in a page. Fetched encrypted
// containers are kept in Cache Storage (container-cache.ts; `cacheEncrypted: false` turns that off).
// What this does and does not protect in a browser: docs/transformersjs.md.

import { CryptoTensorsError } from "../errors.js";
import { webCryptoProvider } from "../crypto/provider-web.js";
import { parseJwkOrSet, parseJwkText, type Key } from "../keys/jwk.js";
import { fetchJwkSet, isAllowedKeyUrl } from "../keys/jwk-set-url.js";
import { cacheStorageContainers } from "./container-cache.js";
import { bytesStream } from "./model-files.js";
import { install, type CryptoTensorsHook, type InstallOptions, type KeySource, type TransformersEnv } from "./core.js";

export type { CryptoTensorsHook, InstallOptions, LoadedModel, TransformersEnv, KeySource } from "./core.js";
export { CryptoTensorsError } from "../errors.js";

async function loadWebKeys(sources: readonly KeySource[], token: string | undefined): Promise<Key[]> {
  const out: Key[] = [];
  for (const s of sources) {
    if (typeof s === "object") {
      out.push(...parseJwkOrSet(s, "key"));
      continue;
    }
    const t = s.trim();
    if (t.startsWith("{")) {
      out.push(...parseJwkText(t, "inline key"));
      continue;
    }
    const url = new URL(t, (globalThis as { location?: { href: string } }).location?.href);
    if (!isAllowedKeyUrl(url)) {
      throw new CryptoTensorsError("ERR_CT_KEY_NOT_FOUND", `${t}: in a browser a key is a JWK object, JWK text or an https:// JWK-set URL`);
    }
    out.push(...(await fetchJwkSet(url, { token })));
  }
  return out;
}

/** A local path, fetched relative to the page; undefined on a 404. @throws ERR_CT_IO */
async function fetchLocal(path: string): Promise<Response | undefined> {
  const res = await fetch(path, { credentials: "same-origin" });
  if (res.status === 404) return undefined;
  if (!res.ok) throw new CryptoTensorsError("ERR_CT_IO", `cannot fetch ${path}: HTTP ${res.status}`);
  return res;
}

/** See the Node entry (node.ts). In a browser, local-path requests are fetched relative to the page. */
export function installCryptoTensors(env: TransformersEnv, options: InstallOptions): Promise<CryptoTensorsHook> {
  return install(env, options, {
    provider: webCryptoProvider,
    loadKeys: loadWebKeys,
    containerCache: options.cacheEncrypted === false ? undefined : cacheStorageContainers(),
    async readLocal(path) {
      const res = await fetchLocal(path);
      return res ? new Uint8Array(await res.arrayBuffer()) : undefined;
    },
    async streamLocal(path) {
      const res = await fetchLocal(path);
      return res ? (res.body ?? bytesStream(new Uint8Array(0))) : undefined;
    },
  });
}
