// The signed release manifest (`model.sig`, docs/format.md §13) for the hook: fetched beside the model
// like its other files, its signature checked against the hook's `trust` keys, and every file the hook
// serves checked against it before transformers.js sees it: the graph and its container, and every other
// file of the release transformers.js asks for (config, tokenizer, templates…), with the rules of plugin/src/release
// (manifest-open.ts: the same code the CLI and the sidecar use). A model without one is refused unless
// `allowUnsignedRelease`.
//
// Where the manifest is: the model's root folder, which a request does not name (`<root>/onnx/model.onnx`),
// so the hook looks in the graph's folder and up to two folders above it, never above
// env.localModelPath nor above a Hub URL's `…/resolve/<revision>/`.

import type { CryptoProvider } from "../crypto/provider.js";
import type { TrustStore } from "../keys/trust.js";
import { ONNX_CONTAINER_SUFFIX } from "../onnx/model.js";
import {
  checkReleaseBytes,
  missingFromReleaseError,
  noManifestError,
  notInReleaseError,
  type OpenedManifest,
  openManifest,
} from "../release/manifest-open.js";
import { RELEASE_MANIFEST_FILE } from "../release/oms.js";
import type { ContainerWeights } from "./container-weights.js";
import type { TransformersEnv } from "./core.js";
import type { ModelFileReader } from "./model-files.js";
import { isHttpUrl } from "./request-keys.js";

export interface HookReleaseOptions {
  trust: TrustStore;
  provider: CryptoProvider;
  read: ModelFileReader;
  allowUnsigned: boolean;
}

/** A manifest found for a file, and the folder (with a trailing slash) its paths are relative to. */
interface Found {
  root: string;
  manifest: OpenedManifest;
}

const MAX_LEVELS_UP = 2;

function parentDir(dir: string): string {
  const trimmed = dir.slice(0, -1);
  return trimmed.slice(0, trimmed.lastIndexOf("/") + 1);
}

/** The folders, nearest first, where the manifest of the model that `key` belongs to may be. */
export function releaseRootCandidates(env: TransformersEnv, key: string): string[] {
  let floor = ""; // candidates must be longer than this (or equal to it, for a Hub revision root)
  let floorIncluded = false;
  if (isHttpUrl(key)) {
    const hub = /^https?:\/\/[^/]+\/(?:.*?\/resolve\/[^/]+\/)?/i.exec(key);
    floor = hub?.[0] ?? "";
    floorIncluded = floor.includes("/resolve/");
  } else if (env.localModelPath && key.startsWith(env.localModelPath)) {
    floor = env.localModelPath.endsWith("/") ? env.localModelPath : `${env.localModelPath}/`;
  }
  const out: string[] = [];
  let dir = key.slice(0, key.lastIndexOf("/") + 1);
  for (let i = 0; i <= MAX_LEVELS_UP && dir; i++) {
    if (!dir.startsWith(floor) || dir.length < floor.length || (dir === floor && !floorIncluded)) break;
    out.push(dir);
    if (dir === floor) break;
    dir = parentDir(dir);
  }
  return out;
}

export class HookRelease {
  /** Opened manifests (or null: none there) by folder; failures are not kept. */
  readonly #byRoot = new Map<string, Promise<OpenedManifest | null>>();

  constructor(
    private readonly env: TransformersEnv,
    private readonly options: HookReleaseOptions,
  ) {}

  forget(): void {
    this.#byRoot.clear();
  }

  /**
   * Checks an encrypted model's graph and container against its release, before anything is decrypted,
   * and returns the part of the check that must wait for the decryption: for a release that lists the
   * container by the sha256 of the whole file, that digest (ContainerWeights.wholeFileSha256, asked here,
   * known once the file was read), else nothing. @throws ERR_CT_INTEGRITY (no manifest, unless
   * allowUnsignedRelease; a file not listed or altered, naming it), ERR_CT_UNTRUSTED_SIGNER,
   * ERR_CT_SIGNATURE_INVALID, ERR_CT_FORMAT — the returned function throws ERR_CT_INTEGRITY
   */
  async checkEncrypted(
    graphKey: string,
    graph: Uint8Array,
    container: Pick<ContainerWeights, "headerBytes" | "wholeFileSha256">,
  ): Promise<() => Promise<void>> {
    const done = async () => {};
    const found = await this.#find(graphKey);
    if (!found) {
      if (this.options.allowUnsigned) return done;
      throw noManifestError(graphKey.slice(0, graphKey.lastIndexOf("/") + 1) || graphKey);
    }
    await this.#check(found, graphKey, graph);
    // A CryptoTensors file is bound by its header (its tensors are bound by the header's tags): the
    // header is enough unless the release lists the container by the sha256 of the whole file.
    const containerKey = graphKey + ONNX_CONTAINER_SUFFIX;
    const name = containerKey.slice(found.root.length);
    if (found.manifest.headers[name] !== undefined) {
      await this.#check(found, containerKey, container.headerBytes);
      return done;
    }
    if (!found.manifest.digests.has(name)) throw notInReleaseError(name, found.manifest);
    const digest = container.wholeFileSha256();
    // The same rule (checkReleaseBytes) on a digest computed as the file streamed through: its "sha256" is that digest.
    return () => checkReleaseBytes(found.manifest, name, new Uint8Array(0), () => digest);
  }

  /**
   * Any other file of a model (config.json, tokenizer files, generation config, chat templates,
   * preprocessor config…): when a release manifest covers it, the file is read here and returned only if
   * it matches its signed sha256; undefined when no release covers it (transformers.js loads it as usual)
   * or when it does not exist and the release does not list it (an optional file: transformers.js' own 404).
   * @throws ERR_CT_INTEGRITY naming the file (altered, not part of the release, listed but missing),
   * and what opening the manifest throws
   */
  async checkedFile(key: string): Promise<Uint8Array | undefined> {
    const found = await this.#find(key);
    if (!found) return undefined;
    const bytes = await this.options.read(key);
    if (!bytes) {
      const name = key.slice(found.root.length);
      if (found.manifest.digests.has(name)) throw missingFromReleaseError(name, found.manifest);
      return undefined;
    }
    await this.#check(found, key, bytes);
    return bytes;
  }

  /** A plaintext graph (allowed by requireEncrypted: false): checked only when a release is there, whose container must not be missing. */
  async checkPlain(graphKey: string, graph: Uint8Array): Promise<void> {
    const found = await this.#find(graphKey);
    if (!found) return;
    const container = graphKey.slice(found.root.length) + ONNX_CONTAINER_SUFFIX;
    if (found.manifest.digests.has(container)) throw missingFromReleaseError(container, found.manifest);
    await this.#check(found, graphKey, graph);
  }

  #check({ root, manifest }: Found, key: string, bytes: Uint8Array): Promise<void> {
    const sha256 = (d: Uint8Array) => this.options.provider.sha256(d);
    return checkReleaseBytes(manifest, key.slice(root.length), bytes, sha256);
  }

  async #find(key: string): Promise<Found | null> {
    for (const root of releaseRootCandidates(this.env, key)) {
      const manifest = await this.#open(root);
      if (manifest) return { root, manifest };
    }
    return null;
  }

  #open(root: string): Promise<OpenedManifest | null> {
    let p = this.#byRoot.get(root);
    if (!p) {
      p = (async () => {
        const bytes = await this.options.read(root + RELEASE_MANIFEST_FILE);
        if (!bytes) return null;
        const text = new TextDecoder().decode(bytes);
        return openManifest(text, this.options.trust, (d) => this.options.provider.sha256(d));
      })();
      this.#byRoot.set(root, p);
      p.catch(() => this.#byRoot.delete(root));
    }
    return p;
  }
}
