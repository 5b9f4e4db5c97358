// The transformers.js hook, independent of the platform (node.ts and web.ts supply file access, key
// loading, crypto and policy). It installs an `env.customCache` whose `match` answers requests for
// ONNX model files (`…/X.onnx`, `…/X.onnx_data[_N]`) of encrypted models: it fetches the stripped graph
// and `X.onnx.cryptotensors` from wherever the request points (a local folder or any Hub-like URL),
// verifies the signature with the trusted keys, checks the graph against the signed digest, decrypts
// the weights in memory, rebuilds the original ONNX bytes and returns them as a Response. Nothing is
// written anywhere: transformers.js' file and browser caches are switched off and `put` stores nothing.
//
// transformers.js swallows exceptions thrown by `match`, so a refused model is answered with a
// Response whose body fails with the typed CryptoTensorsError: loading then rejects with that error.

import { CryptoTensorsError } from "../errors.js";
import { encodeBase64 } from "../crypto/base64.js";
import type { CryptoProvider } from "../crypto/provider.js";
import { MemoryCryptoTensors } from "../container/memory-reader.js";
import type { PolicyEngine } from "../container/policy-check.js";
import type { Key } from "../keys/jwk.js";
import { TrustStore } from "../keys/trust.js";
import { joinOnnx, ONNX_CONTAINER_SUFFIX, ONNX_MANIFEST_KEY, parseManifest } from "../onnx/model.js";

/** A key source, as the CLI's --key/--trust take them: a JWK or JWK set object, inline JSON, a file path (Node), or a JWK-set URL. */
export type KeySource = string | object;

export interface InstallOptions {
  /** Master key(s) that decrypt the models. */
  key: KeySource | readonly KeySource[];
  /** Public key(s) of the publishers whose signatures are trusted. */
  trust: KeySource | readonly KeySource[];
  /** Bearer token for HTTPS JWK-set URLs (Node default: $CTENSORS_KEY_TOKEN). */
  keyToken?: string;
  /**
   * Refuse ONNX models that are not encrypted and signed (default true): an attacker who can change the
   * files must not be able to swap in a plaintext model. Set false to let plaintext models load as usual.
   */
  requireEncrypted?: boolean;
  /** fetch used for model files (default: `env.fetch`, else `globalThis.fetch`). */
  fetch?: FetchLike;
  /** Extra headers for model file requests (e.g. `{ authorization: "Bearer hf_…" }` for private Hub repos). */
  headers?: Record<string, string>;
}

export interface LoadedModel {
  /** The request key of the graph that was decrypted. */
  source: string;
  signer: string | null;
  tensors: number;
}

export interface CryptoTensorsHook {
  /** The object installed as `env.customCache`. */
  readonly cache: { match(request: string): Promise<Response | undefined>; put(request: string, response: Response): Promise<void>; delete(request: string): Promise<boolean> };
  /** Models decrypted so far (each once: later requests are served from memory). */
  readonly loaded: readonly LoadedModel[];
  /** Drops the decrypted models kept in memory (zeroing their bytes). */
  forget(): void;
  /** Restores the env settings changed by the install and forgets the models. */
  uninstall(): void;
}

/** What a platform supplies. */
export interface Platform {
  provider: CryptoProvider;
  loadKeys(sources: readonly KeySource[], token: string | undefined): Promise<Key[]>;
  /** Reads a local path; undefined when the file does not exist. */
  readLocal(path: string): Promise<Uint8Array | undefined>;
  /** Evaluates non-default access policies (Node: the $CTENSORS_REGO_PYTHON engine); without one they are refused. */
  policyEngine?: PolicyEngine | undefined;
  /** Default headers for a model URL (Node: the Hub token for huggingface.co). */
  defaultHeaders?(url: string): Record<string, string>;
}

/** The subset of transformers.js' `env` the hook uses. */
export interface TransformersEnv {
  useCustomCache?: boolean;
  customCache?: unknown;
  useFSCache?: boolean;
  useBrowserCache?: boolean;
  experimental_useCrossOriginStorage?: boolean;
  allowLocalModels?: boolean;
  localModelPath?: string;
  remoteHost?: string;
  remotePathTemplate?: string;
  fetch?: FetchLike;
}

/** What the hook needs of a fetch function (transformers.js' `env.fetch` is one). */
export type FetchLike = (input: string, init?: any) => Promise<Response>;

const ONNX_REQUEST = /^(.*\.onnx)(?:_data(?:_\d+)?)?$/;

type Entry =
  | { kind: "absent" }
  | { kind: "plain" }
  | { kind: "model"; files: Map<string, Uint8Array> };

const list = (v: KeySource | readonly KeySource[]): KeySource[] => (Array.isArray(v) ? [...v] : [v as KeySource]);

function isHttpUrl(s: string): boolean {
  return /^https?:\/\//i.test(s);
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/**
 * A Response whose body fails with `err`: transformers.js reads the body, so its load rejects with `err`.
 * The body methods are overridden because browsers turn a failed body stream into a bare
 * "TypeError: Failed to fetch", which would hide the typed error.
 */
function failingResponse(err: unknown): Response {
  const res = new Response(null, { status: 200 });
  const reject = { value: () => Promise.reject(err) };
  return Object.defineProperties(res, {
    body: { get: () => new ReadableStream({ start(controller) { controller.error(err); } }) },
    arrayBuffer: reject, blob: reject, text: reject, json: reject, bytes: reject,
  });
}

export async function install(env: TransformersEnv, options: InstallOptions, platform: Platform): Promise<CryptoTensorsHook> {
  if (!env || typeof env !== "object") throw new TypeError("installCryptoTensors(env, options): pass transformers.js' `env`");
  if (options?.key === undefined) throw new TypeError("installCryptoTensors: `key` (the master key: JWK, JWK file path or JWK-set URL) is required");
  if (options.trust === undefined) throw new TypeError("installCryptoTensors: `trust` (the publisher's public key) is required");
  const keys = await platform.loadKeys(list(options.key), options.keyToken);
  if (!keys.some((k) => k.kind === "enc")) throw new CryptoTensorsError("ERR_CT_KEY_NOT_FOUND", "`key` holds no encryption (master) key");
  const trust = new TrustStore(await platform.loadKeys(list(options.trust), options.keyToken));
  if (trust.size === 0) throw new CryptoTensorsError("ERR_CT_UNTRUSTED_SIGNER", "`trust` holds no Ed25519 public key");
  const requireEncrypted = options.requireEncrypted !== false;

  const memo = new Map<string, Promise<Entry>>();
  /** `<model id>/<file>` of local graphs that loaded, for the remote-URL key transformers.js asks next. */
  const localHits = new Map<string, string>();
  const loaded: LoadedModel[] = [];

  const doFetch = (url: string, init: RequestInit): Promise<Response> => (options.fetch ?? env.fetch ?? ((u: string, i?: RequestInit) => globalThis.fetch(u, i)))(url, init);

  async function get(key: string): Promise<Uint8Array | undefined> {
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
  }

  async function load(graphKey: string): Promise<Entry> {
    const container = await get(graphKey + ONNX_CONTAINER_SUFFIX);
    const graph = await get(graphKey);
    if (!container) {
      if (!graph) return { kind: "absent" };
      if (!requireEncrypted) return { kind: "plain" };
      throw new CryptoTensorsError("ERR_CT_NOT_CONFIDENTIAL", `${graphKey} is not encrypted (no ${basename(graphKey)}${ONNX_CONTAINER_SUFFIX} beside it) but an encrypted, signed model was required`);
    }
    if (!graph) throw new CryptoTensorsError("ERR_CT_FORMAT", `${graphKey}${ONNX_CONTAINER_SUFFIX} has no graph ${basename(graphKey)} beside it`);
    const reader = await MemoryCryptoTensors.open(container, { keys, trust, requireEncrypted, provider: platform.provider, policyEngine: platform.policyEngine });
    try {
      const manifest = parseManifest(reader.metadata(ONNX_MANIFEST_KEY));
      if (manifest.graph !== basename(graphKey)) throw new CryptoTensorsError("ERR_CT_FORMAT", `the container holds the weights of ${manifest.graph}, not of ${basename(graphKey)}`);
      if (encodeBase64(await platform.provider.sha256(graph)) !== manifest.graphSha256) {
        throw new CryptoTensorsError("ERR_CT_INTEGRITY", `${graphKey} does not match the signed digest in its container: the graph was modified`);
      }
      const { model, external } = await joinOnnx(graph, manifest, (name) => reader.readTensor(name));
      const files = new Map<string, Uint8Array>([[manifest.graph, model], ...external]);
      loaded.push({ source: graphKey, signer: reader.signer?.kid ?? null, tensors: reader.tensors.length });
      return { kind: "model", files };
    } finally {
      reader.close();
      container.fill(0);
    }
  }

  /** `<model id>/<file>` for a local-path request, or undefined. */
  function localRel(key: string): string | undefined {
    const base = env.localModelPath;
    if (!base || isHttpUrl(key)) return undefined;
    const prefix = base.endsWith("/") ? base : base + "/";
    return key.startsWith(prefix) ? key.slice(prefix.length) : undefined;
  }

  /** `<model id>/<file>` for a remote request built from env.remoteHost and env.remotePathTemplate. */
  function remoteRel(key: string): string | undefined {
    const host = env.remoteHost ?? "";
    if (!host || !key.startsWith(host)) return undefined;
    const template = (env.remotePathTemplate ?? "{model}/resolve/{revision}/").replace(/[.*+?^$()|[\]\\]/g, "\\$&");
    const re = new RegExp("^/*" + template.replace("{model}", "(.+?)").replace("{revision}", "[^/]+") + "(.+)$");
    const m = re.exec(key.slice(host.length));
    return m ? `${m[1]}/${m[2]}` : undefined;
  }

  function entryFor(graphKey: string): Promise<Entry> {
    let p = memo.get(graphKey);
    if (!p) {
      p = load(graphKey);
      memo.set(graphKey, p);
      // Failures and "not here" answers are not kept: a later request tries again.
      p.then((e) => { if (e.kind === "absent") memo.delete(graphKey); }, () => memo.delete(graphKey));
    }
    return p;
  }

  async function match(request: string): Promise<Response | undefined> {
    const key = String(request).split(/[?#]/)[0]!;
    const m = ONNX_REQUEST.exec(key);
    if (!m) return undefined;
    let graphKey = m[1]!;
    const isLocal = !isHttpUrl(key);
    if (isLocal && env.allowLocalModels === false) return undefined;
    if (!isLocal) {
      // transformers.js asks the remote key again after a hit on the local path: answer from the local load.
      const rel = remoteRel(graphKey);
      const local = rel ? localHits.get(rel) : undefined;
      if (local) graphKey = local;
    }
    const rel = localRel(graphKey);
    try {
      const entry = await entryFor(graphKey);
      if (rel && entry.kind !== "absent") localHits.set(rel, graphKey);
      if (entry.kind !== "model") return undefined;
      const bytes = entry.files.get(basename(key));
      if (!bytes) return undefined;
      return new Response(bytes as unknown as ConstructorParameters<typeof Response>[0], { status: 200, headers: { "content-length": String(bytes.length), "content-type": "application/octet-stream" } });
    } catch (err) {
      if (rel) localHits.set(rel, graphKey); // the remote key asked next must fail the same way
      return failingResponse(err);
    }
  }

  const cache = {
    match,
    // Nothing is ever stored: responses (config, tokenizer) are simply not cached.
    async put(_request: string, _response: Response): Promise<void> {},
    async delete(_request: string): Promise<boolean> { return false; },
  };

  const saved = {
    useCustomCache: env.useCustomCache, customCache: env.customCache, useFSCache: env.useFSCache,
    useBrowserCache: env.useBrowserCache, experimental_useCrossOriginStorage: env.experimental_useCrossOriginStorage,
  };
  env.useFSCache = false; // the Node file cache would write the decrypted model to disk
  env.useBrowserCache = false;
  env.experimental_useCrossOriginStorage = false;
  env.useCustomCache = true;
  env.customCache = cache;

  const forget = () => {
    for (const p of memo.values()) p.then((e) => { if (e.kind === "model") for (const b of e.files.values()) b.fill(0); }, () => {});
    memo.clear();
    localHits.clear();
  };
  return {
    cache,
    loaded,
    forget,
    uninstall() {
      forget();
      Object.assign(env, saved);
    },
  };
}
