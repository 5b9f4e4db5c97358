// The models the hook has opened, by graph key: each encrypted ONNX graph is fetched, verified and
// decrypted once (concurrent requests share the work) and its files are kept in memory until
// transformers.js has taken each of them (take()): from then on the only reference is onnxruntime's
// input, so memory falls back to a plain load's once the session exists. A later load of the same model
// fetches and decrypts it again. forget() zeroes what was not taken yet.

import { CryptoTensorsError } from "../errors.js";
import { encodeBase64 } from "../crypto/base64.js";
import type { Key } from "../keys/jwk.js";
import type { TrustStore } from "../keys/trust.js";
import { layoutOnnx, ONNX_CONTAINER_SUFFIX, ONNX_MANIFEST_KEY, parseManifest } from "../onnx/model.js";
import { teeToCache } from "./cache-tee.js";
import { type ContainerOpenOptions, type ContainerWeights, streamWeights } from "./container-weights.js";
import type { LoadedModel, Platform } from "./core.js";
import type { ModelFileReader, ModelFileStreamer } from "./model-files.js";
import type { HookRelease } from "./release-check.js";
import { basename, isHttpUrl } from "./request-keys.js";

/** What a graph key turned out to be. */
export type Entry = { kind: "absent" } | { kind: "plain" } | { kind: "model"; files: Map<string, Uint8Array> };

export interface ModelStoreOptions {
  keys: readonly Key[];
  trust: TrustStore;
  requireEncrypted: boolean;
  platform: Platform;
  read: ModelFileReader;
  /** Opens a container as a stream (decrypted as it arrives). */
  stream: ModelFileStreamer;
  /** The release manifest check (release-check.ts). */
  release: HookRelease;
}

export class ModelStore {
  /** Models decrypted so far. */
  readonly loaded: LoadedModel[] = [];
  readonly #memo = new Map<string, Promise<Entry>>();
  /** The memo's settled model entries (for heldBytes and take). */
  readonly #settled = new Map<string, Entry>();

  constructor(private readonly options: ModelStoreOptions) {}

  /** The entry for a graph key, loaded once. Failures and "not here" answers are not kept: a later request tries again. */
  entryFor(graphKey: string): Promise<Entry> {
    let p = this.#memo.get(graphKey);
    if (!p) {
      p = this.#load(graphKey);
      this.#memo.set(graphKey, p);
      p.then(
        (e) => {
          if (e.kind === "absent") this.#memo.delete(graphKey);
          else if (e.kind === "model" && this.#memo.get(graphKey) === p) this.#settled.set(graphKey, e);
        },
        () => this.#memo.delete(graphKey),
      );
    }
    return p;
  }

  /** Bytes of decrypted files held, waiting for transformers.js to take them. */
  get heldBytes(): number {
    let n = 0;
    for (const e of this.#settled.values()) if (e.kind === "model") for (const b of e.files.values()) n += b.length;
    return n;
  }

  /**
   * Hands a decrypted file over: the store forgets it (transformers.js' buffer is the only reference now),
   * and forgets the model once every file was taken.
   */
  take(graphKey: string, entry: Entry, name: string): void {
    if (entry.kind !== "model") return;
    entry.files.delete(name);
    if (entry.files.size === 0 && this.#settled.get(graphKey) === entry) {
      this.#settled.delete(graphKey);
      this.#memo.delete(graphKey);
    }
  }

  /** Drops the decrypted models, zeroing their bytes. */
  forget(): void {
    for (const p of this.#memo.values())
      p.then(
        (e) => {
          if (e.kind === "model") for (const b of e.files.values()) b.fill(0);
        },
        () => {},
      );
    this.#memo.clear();
    this.#settled.clear();
    this.options.release.forget();
  }

  /** Loads from a cached container when there is one; if that fails for any reason, drops it and loads from the source. */
  async #load(graphKey: string): Promise<Entry> {
    const key = graphKey + ONNX_CONTAINER_SUFFIX;
    const cache = this.options.platform.containerCache;
    const cached = cache && !this.#isLocalFile(key) ? await cache.get(key).catch(() => undefined) : undefined;
    if (cached) {
      try {
        const entry = await this.#loadWith(graphKey, () => this.#streamed(cached));
        if (entry.kind === "model") return entry;
      } catch {
        // stale (a newer release), damaged or otherwise unusable: fetched again below
      }
      await cache!.delete(key).catch(() => {});
    }
    return this.#loadWith(graphKey, () => this.#openContainer(key));
  }

  async #loadWith(graphKey: string, openContainer: () => Promise<ContainerWeights | undefined>): Promise<Entry> {
    const { read, requireEncrypted } = this.options;
    const weights = await openContainer();
    try {
      const graph = await read(graphKey);
      if (!weights) {
        if (!graph) return { kind: "absent" };
        if (!requireEncrypted) {
          await this.options.release.checkPlain(graphKey, graph);
          return { kind: "plain" };
        }
        throw new CryptoTensorsError(
          "ERR_CT_NOT_CONFIDENTIAL",
          `${graphKey} is not encrypted (no ${basename(graphKey)}${ONNX_CONTAINER_SUFFIX} beside it) but an encrypted, signed model was required`,
        );
      }
      if (!graph)
        throw new CryptoTensorsError("ERR_CT_FORMAT", `${graphKey}${ONNX_CONTAINER_SUFFIX} has no graph ${basename(graphKey)} beside it`);
      const files = await this.#decrypt(graphKey, graph, weights);
      weights.keep?.();
      return { kind: "model", files };
    } finally {
      await weights?.close();
    }
  }

  #openOptions(): ContainerOpenOptions {
    const { keys, trust, requireEncrypted, platform } = this.options;
    return { keys, trust, requireEncrypted, provider: platform.provider, policyEngine: platform.policyEngine };
  }

  /** A local file the platform decrypts from directly (Node). */
  #isLocalFile(key: string): boolean {
    return !isHttpUrl(key) && this.options.platform.openLocalContainer !== undefined;
  }

  /** A container read from `body` as it arrives, its header verified (streamWeights cancels `body` when that fails). */
  #streamed(body: ReadableStream<Uint8Array>): Promise<ContainerWeights> {
    return streamWeights(body, this.#openOptions());
  }

  /**
   * The container, opened and verified: a local file directly where the platform can (Node), else a
   * stream of its bytes, decrypted as they arrive — and written to the platform's container cache
   * (ciphertext) at the same time, kept there only once every tensor decrypted and every check passed.
   */
  async #openContainer(key: string): Promise<ContainerWeights | undefined> {
    const { platform, stream } = this.options;
    if (this.#isLocalFile(key)) return platform.openLocalContainer!(key, this.#openOptions());
    const body = await stream(key);
    if (!body) return undefined;
    const cache = platform.containerCache;
    if (!cache) return this.#streamed(body);
    const tee = teeToCache(body, cache, key);
    let weights: ContainerWeights;
    try {
      weights = await this.#streamed(tee.body);
    } catch (err) {
      await tee.abort(err);
      throw err;
    }
    let kept = false;
    return {
      ...weights,
      keep() {
        kept = true;
        tee.commit(); // not awaited by the load: the model is ready while the browser stores the ciphertext
      },
      async close() {
        await weights.close();
        if (!kept) await tee.abort(new Error("the container was not kept"));
      },
    };
  }

  /**
   * Checks the graph against the container and the release, lays the original files out and decrypts
   * each weight straight into its place in them (one pass per file, no copy of the model in between).
   */
  async #decrypt(graphKey: string, graph: Uint8Array, weights: ContainerWeights): Promise<Map<string, Uint8Array>> {
    const { platform, release } = this.options;
    const manifest = parseManifest(weights.metadata(ONNX_MANIFEST_KEY));
    if (manifest.graph !== basename(graphKey))
      throw new CryptoTensorsError("ERR_CT_FORMAT", `the container holds the weights of ${manifest.graph}, not of ${basename(graphKey)}`);
    if (encodeBase64(await platform.provider.sha256(graph)) !== manifest.graphSha256) {
      throw new CryptoTensorsError(
        "ERR_CT_INTEGRITY",
        `${graphKey} does not match the signed digest in its container: the graph was modified`,
      );
    }
    // The container and graph are each authentic; the release binds them to the rest of the model (the
    // part that needs the whole container, when the release lists it so, is finished after it was read).
    const finishRelease = await release.checkEncrypted(graphKey, graph, weights);
    const { files, placements } = layoutOnnx(graph, manifest, (name) => weights.byteLength(name));
    try {
      await weights.decryptInto(files, placements);
      await finishRelease();
    } catch (err) {
      for (const buffer of files.values()) buffer.fill(0);
      throw err;
    }
    this.loaded.push({ source: graphKey, signer: weights.signer, tensors: weights.tensorCount });
    return files;
  }
}
