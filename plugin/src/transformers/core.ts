// The transformers.js hook, independent of the platform (node.ts and web.ts supply file access, key
// loading, crypto and policy). It installs an `env.customCache` whose `match` answers requests for
// ONNX model files (`…/X.onnx`, `…/X.onnx_data[_N]`) of encrypted models: it fetches the stripped graph
// and `X.onnx.cryptotensors` from wherever the request points (a local folder or any Hub-like URL),
// verifies the signature with the trusted keys, checks the graph against the signed digest and both
// against the model's signed release manifest (release-check.ts), decrypts
// the weights as the container streams in, straight into the rebuilt ONNX files, and returns them as a Response. The other files
// of a model with a release manifest (config, tokenizer, chat templates…) are read by the hook too and
// handed to transformers.js only once they match the manifest. Nothing decrypted is written anywhere:
// transformers.js' file and browser caches are switched off and `put` stores nothing; in browsers the
// fetched ENCRYPTED container is kept in Cache Storage (container-cache.ts) so a reload downloads nothing.
//
// transformers.js swallows exceptions thrown by `match`, so a refused model is answered with a
// Response whose body fails with the typed CryptoTensorsError: loading then rejects with that error.

//
// The parts: model-files.ts reads files (local or fetched), container-weights.ts / file-weights.ts open a
// container and decrypt into the final buffers, container-cache.ts keeps ciphertext between page loads,
// model-store.ts verifies and decrypts each graph once, onnx-cache.ts answers transformers.js' requests
// from it, request-keys.ts maps requests to graph keys, failing-response.ts carries a refusal through
// transformers.js.

import { CryptoTensorsError } from "../errors.js";
import type { CryptoProvider } from "../crypto/provider.js";
import type { PolicyEngine } from "../container/policy-check.js";
import type { Key } from "../keys/jwk.js";
import { TrustStore } from "../keys/trust.js";
import type { ContainerCache } from "./container-cache.js";
import type { ContainerOpenOptions, ContainerWeights } from "./container-weights.js";
import { modelFileReader, modelFileStreamer } from "./model-files.js";
import { ModelStore } from "./model-store.js";
import { OnnxCache } from "./onnx-cache.js";
import { HookRelease } from "./release-check.js";

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
  /**
   * Load encrypted models that have no signed release manifest (`model.sig`) beside them (default false,
   * as the CLI's --allow-unsigned-release). A manifest that is there is always checked.
   */
  allowUnsignedRelease?: boolean;
  /** fetch used for model files (default: `env.fetch`, else `globalThis.fetch`). */
  fetch?: FetchLike;
  /**
   * Browsers: keep each fetched encrypted container (ciphertext, never a decrypted file) in Cache Storage,
   * so that the next page load does not download the model again (default true). Node: no effect.
   */
  cacheEncrypted?: boolean;
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
  readonly cache: {
    match(request: string): Promise<Response | undefined>;
    put(request: string, response: Response): Promise<void>;
    delete(request: string): Promise<boolean>;
  };
  /** Models decrypted so far (a model loaded again after transformers.js took its files is decrypted again). */
  readonly loaded: readonly LoadedModel[];
  /** Bytes of decrypted files the hook still holds: 0 once transformers.js has taken every file it asked for. */
  readonly heldBytes: number;
  /** Drops the decrypted files not yet taken by transformers.js (zeroing their bytes). */
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
  /** Opens a local path as a stream (browsers: the fetched body); without it, readLocal's bytes are used. */
  streamLocal?(path: string): Promise<ReadableStream<Uint8Array> | undefined>;
  /**
   * Opens a local container file to decrypt from it directly (Node: file-weights.ts); without it, local
   * containers are streamed (streamLocal) and decrypted as they arrive. Undefined when the file does not exist.
   */
  openLocalContainer?(path: string, options: ContainerOpenOptions): Promise<ContainerWeights | undefined>;
  /** Where fetched containers (ciphertext only) are kept between loads (browsers: Cache Storage). */
  containerCache?: ContainerCache | undefined;
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
  allowRemoteModels?: boolean;
  localModelPath?: string;
  remoteHost?: string;
  remotePathTemplate?: string;
  fetch?: FetchLike;
}

/** What the hook needs of a fetch function (transformers.js' `env.fetch` is one). */
// biome-ignore lint/suspicious/noExplicitAny: transformers.js' env.fetch takes its own init type; any keeps both assignable
export type FetchLike = (input: string, init?: any) => Promise<Response>;

const list = (v: KeySource | readonly KeySource[]): KeySource[] => (Array.isArray(v) ? [...v] : [v as KeySource]);

function checkInstallArguments(env: TransformersEnv, options: InstallOptions): void {
  if (!env || typeof env !== "object") throw new TypeError("installCryptoTensors(env, options): pass transformers.js' `env`");
  if (options?.key === undefined)
    throw new TypeError("installCryptoTensors: `key` (the master key: JWK, JWK file path or JWK-set URL) is required");
  if (options.trust === undefined) throw new TypeError("installCryptoTensors: `trust` (the publisher's public key) is required");
}

/** The master keys and the trusted publishers; refuses a `key` with no encryption key and a `trust` with no public key. */
async function loadInstallKeys(options: InstallOptions, platform: Platform): Promise<{ keys: Key[]; trust: TrustStore }> {
  const keys = await platform.loadKeys(list(options.key), options.keyToken);
  if (!keys.some((k) => k.kind === "enc")) throw new CryptoTensorsError("ERR_CT_KEY_NOT_FOUND", "`key` holds no encryption (master) key");
  const trust = new TrustStore(await platform.loadKeys(list(options.trust), options.keyToken));
  if (trust.size === 0) throw new CryptoTensorsError("ERR_CT_UNTRUSTED_SIGNER", "`trust` holds no Ed25519 public key");
  return { keys, trust };
}

/** Installs `cache` as env.customCache with every cache that could write a decrypted file off; returns the undo. */
function takeOverCaches(env: TransformersEnv, cache: OnnxCache): () => void {
  const saved = {
    useCustomCache: env.useCustomCache,
    customCache: env.customCache,
    useFSCache: env.useFSCache,
    useBrowserCache: env.useBrowserCache,
    experimental_useCrossOriginStorage: env.experimental_useCrossOriginStorage,
  };
  env.useFSCache = false; // the Node file cache would write the decrypted model to disk
  env.useBrowserCache = false;
  env.experimental_useCrossOriginStorage = false;
  env.useCustomCache = true;
  env.customCache = cache;
  return () => Object.assign(env, saved);
}

export async function install(env: TransformersEnv, options: InstallOptions, platform: Platform): Promise<CryptoTensorsHook> {
  checkInstallArguments(env, options);
  const { keys, trust } = await loadInstallKeys(options, platform);
  const read = modelFileReader(env, options, platform);
  const release = new HookRelease(env, { trust, provider: platform.provider, read, allowUnsigned: options.allowUnsignedRelease === true });
  const stream = modelFileStreamer(env, options, platform);
  const store = new ModelStore({ keys, trust, requireEncrypted: options.requireEncrypted !== false, platform, read, stream, release });
  const cache = new OnnxCache(env, store, release);
  const restore = takeOverCaches(env, cache);
  const forget = () => cache.forget();
  return {
    cache,
    loaded: store.loaded,
    get heldBytes() {
      return store.heldBytes;
    },
    forget,
    uninstall() {
      forget();
      restore();
    },
  };
}
