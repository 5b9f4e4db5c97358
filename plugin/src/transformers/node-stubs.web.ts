// Browser build only (plugin/scripts/build-web.mjs): stands in for every `node:` module. Shared code
// imports these names but the browser paths never call them; if one is called, it fails loudly.

function unavailable(name: string): never {
  throw new TypeError(`${name} is not available in the browser build of ctensors`);
}

export const randomBytes = (n: number): Uint8Array => globalThis.crypto.getRandomValues(new Uint8Array(n));
export const createHash = (): never => unavailable("node:crypto createHash");
export const createCipheriv = (): never => unavailable("node:crypto createCipheriv");
export const createDecipheriv = (): never => unavailable("node:crypto createDecipheriv");
export const createPrivateKey = (): never => unavailable("node:crypto createPrivateKey");
export const createPublicKey = (): never => unavailable("node:crypto createPublicKey");
export const sign = (): never => unavailable("node:crypto sign");
export const verify = (): never => unavailable("node:crypto verify");
export const readFile = (): never => unavailable("node:fs readFile");
export const open = (): never => unavailable("node:fs open");
export const fileURLToPath = (): never => unavailable("node:url fileURLToPath");
export const execFile = (): never => unavailable("node:child_process execFile");
export default {};
