// `import { installCryptoTensors } from "ctensors/transformers"` in Node: loads encrypted ONNX models
// (see core.ts) with node:crypto, key files / env: / HTTPS JWK-set URLs as the CLI reads them, local
// model folders read from disk (never written), and the CLI's policy evaluation.

import { readFile } from "node:fs/promises";
import { nodeCryptoProvider } from "../crypto/provider-node.js";
import { loadAllKeys } from "../keys/sources.js";
import { defaultPolicyEngine } from "../policy.js";
import { fileWeights } from "./file-weights.js";
import { install, type CryptoTensorsHook, type InstallOptions, type TransformersEnv } from "./core.js";

export type { CryptoTensorsHook, InstallOptions, LoadedModel, TransformersEnv, KeySource } from "./core.js";
export { CryptoTensorsError } from "../errors.js";

/**
 * Makes transformers.js (`pipeline`, `AutoModel.from_pretrained`, …) load CryptoTensors-encrypted ONNX
 * models: `await installCryptoTensors(env, { key: "enc.jwk", trust: "sign.pub.jwk" })`.
 * Turns off transformers.js' file cache (`env.useFSCache`) so that no decrypted file is written.
 */
export function installCryptoTensors(env: TransformersEnv, options: InstallOptions): Promise<CryptoTensorsHook> {
  return install(env, options, {
    provider: nodeCryptoProvider,
    loadKeys: (sources, token) => loadAllKeys(sources, { token }),
    async readLocal(path) {
      try {
        return await readFile(path); // a Buffer is a Uint8Array: no copy
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "ENOENT" || code === "ENOTDIR") return undefined;
        throw err;
      }
    },
    openLocalContainer: fileWeights,
    policyEngine: defaultPolicyEngine(),
    defaultHeaders(url): Record<string, string> {
      // As transformers.js does: the Hub token only for the Hub.
      const token = process.env.HF_TOKEN;
      const host = new URL(url).hostname;
      return token && (host === "huggingface.co" || host === "hf.co" || host.endsWith(".huggingface.co"))
        ? { authorization: `Bearer ${token}` }
        : {};
    },
  });
}
