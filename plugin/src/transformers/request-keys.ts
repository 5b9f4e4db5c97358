// How the hook reads transformers.js' requests: which ask for an ONNX file, and which local-path and
// remote-URL requests name the same model file (transformers.js asks the remote key again after a hit
// on the local path).

import type { TransformersEnv } from "./core.js";

/** `…/X.onnx`, `…/X.onnx_data`, `…/X.onnx_data_N`: group 1 is the graph's key. */
export const ONNX_REQUEST = /^(.*\.onnx)(?:_data(?:_\d+)?)?$/;

export function isHttpUrl(s: string): boolean {
  return /^https?:\/\//i.test(s);
}

export function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** The request without its query or fragment. */
export function requestKey(request: string): string {
  return String(request).split(/[?#]/)[0]!;
}

/** `<model id>/<file>` for a local-path request under env.localModelPath, or undefined. */
export function localRel(env: TransformersEnv, key: string): string | undefined {
  const base = env.localModelPath;
  if (!base || isHttpUrl(key)) return undefined;
  const prefix = base.endsWith("/") ? base : base + "/";
  return key.startsWith(prefix) ? key.slice(prefix.length) : undefined;
}

/** `<model id>/<file>` for a remote request built from env.remoteHost and env.remotePathTemplate, or undefined. */
export function remoteRel(env: TransformersEnv, key: string): string | undefined {
  const host = env.remoteHost ?? "";
  if (!host || !key.startsWith(host)) return undefined;
  const template = (env.remotePathTemplate ?? "{model}/resolve/{revision}/").replace(/[.*+?^$()|[\]\\]/g, "\\$&");
  const re = new RegExp("^/*" + template.replace("{model}", "(.+?)").replace("{revision}", "[^/]+") + "(.+)$");
  const m = re.exec(key.slice(host.length));
  return m ? `${m[1]}/${m[2]}` : undefined;
}
