// Browser entry of the shared test vectors (test/vectors/): bundled by browser.test.ts with the same
// esbuild plugin as the browser build (plugin/scripts/build-web.mjs), evaluated in the page, and called
// with the manifest and the files. The in-memory reader runs on WebCrypto + @noble, as in the browser build.

import { webCryptoProvider } from "../../plugin/src/crypto/provider-web.js";
import { memoryVerdict, type Manifest, type Verdict } from "../vectors/replay.js";

function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/** Every case's verdict. `files`: base64 of each file named by the manifest; `texts`: the key files. */
export async function replayAll(
  manifest: Manifest,
  files: Record<string, string>,
  texts: Record<string, string>,
): Promise<Record<string, Verdict>> {
  const out: Record<string, Verdict> = {};
  const readText = (rel: string) => {
    const t = texts[rel];
    if (t === undefined) throw new Error(`missing key file ${rel}`);
    return t;
  };
  for (const c of manifest.cases) out[c.name] = await memoryVerdict(c, fromBase64(files[c.file]!), readText, webCryptoProvider);
  return out;
}
