// Open models: every shard of a local file or folder opened with CryptoTensorsReader (signature,
// policy, downgrade protection and DEK unwrap happen there), the manifest, and reference counts.
// A model stays open while any OpenModel call has not been matched by a CloseModel (or by the end of
// the client session it was made in: releaseOwner), or a Load uses it; then its readers are closed,
// which zeroes the unwrapped data keys. Every release goes through closeIfUnused.

import { createHash } from "node:crypto";
import { realpath, stat } from "node:fs/promises";
import { dirname, isAbsolute, relative } from "node:path";
import {
  checkShardIndex,
  CryptoTensorsError,
  CryptoTensorsReader,
  defaultPolicyEngine,
  listModelFiles,
  modelSafetensors,
  requiredEncryption,
  type Key,
  type RequireEncrypted,
  type TrustStore,
} from "../index.js";
import type { KmsKeyRelease } from "../kms/index.js";
import { fetchSnapshot, readDeclaration, tryParseRepoRef, type HubSettings, type RepoRef } from "../hub/index.js";
import { checkFolderRelease, RELEASE_MANIFEST_FILE, type ReleasePolicy } from "../release/index.js";
import { badRequest, SidecarError } from "./errors.js";
import type { Logger } from "./log.js";
import type { SidecarMetrics } from "./metrics.js";
import { runPolicyGate, type PolicyGateOptions } from "./policy-gate.js";

export interface ModelOpenOptions {
  keys: readonly Key[];
  trust: TrustStore | undefined;
  /**
   * Serve plain and partially encrypted models too (`--allow-plaintext`). Default false: only models
   * signed by a trusted key with every tensor encrypted. A Hub repo declared confidential is always strict.
   */
  allowPlaintext: boolean;
  /** Where Hub sources come from; Hub sources are refused without it. */
  hub?: HubSettings;
  /** Master keys held by a key service, released to this sidecar's identity (docs/key-management.md). */
  kms?: KmsKeyRelease | undefined;
  /** Release checks for folders (default: a signed release manifest is required, no rollback history). */
  release?: ReleasePolicy;
  /** Policies evaluated with an input before keys are used (policy-gate.ts); default: $CTENSORS_REGO_PYTHON's engine, no claims. */
  policy?: PolicyGateOptions;
}

/** Which files of a Hub repo the sidecar fetches: the weights and their index, the confidentiality
 * declaration, and the small plaintext files clients read beside them (config, tokenizer, chat template). */
export function neededFromHub(path: string): boolean {
  const name = path.slice(path.lastIndexOf("/") + 1);
  if (path === RELEASE_MANIFEST_FILE) return true;
  if (/\.safetensors$/.test(name) || /\.safetensors\.index\.json$/.test(name)) return true;
  if (path.includes("/")) return false; // weights of other formats, onnx/, subfolders: not for this loader
  return (
    /\.(json|txt|model|jinja|tiktoken)$/.test(name) || name.startsWith("tokenizer") || name.startsWith("vocab") || name.startsWith("merges")
  );
}

export interface HubOrigin {
  repo: string;
  revision: string;
  commit: string;
}

export interface ManifestEntry {
  name: string;
  dtype: string;
  shape: number[];
  byteSize: number;
  encrypted: boolean;
  /** The shard, relative to the model root. */
  file: string;
  reader: CryptoTensorsReader;
}

/** Who holds an open reference: a client session's id, or NO_SESSION for OpenModel calls made outside one. */
export const NO_SESSION = "";

export class OpenModel {
  /** OpenModel calls not yet matched by CloseModel, by owner (a session id, or NO_SESSION). */
  readonly openRefs = new Map<string, number>();
  /** Loads in progress. */
  loadRefs = 0;

  constructor(
    readonly id: string,
    /** The real path of the source (file or folder). */
    readonly source: string,
    readonly readers: readonly CryptoTensorsReader[],
    readonly tensors: readonly ManifestEntry[],
    readonly metadata: Record<string, string>,
    readonly signerKid: string,
    /** Set for a Hub source. */
    readonly hub?: HubOrigin,
  ) {}

  readonly byName = new Map<string, ManifestEntry>();

  /** Whether any OpenModel reference is held. */
  get isOpen(): boolean {
    return this.openRefs.size > 0;
  }

  get totalBytes(): number {
    return this.tensors.reduce((sum, t) => sum + t.byteSize, 0);
  }
}

/** model_id: stable for a source (the same real path gives the same id across opens and restarts). */
export function modelIdOf(realSource: string): string {
  return `m-${createHash("sha256").update(realSource).digest("hex").slice(0, 16)}`;
}

export class ModelRegistry {
  private readonly models = new Map<string, OpenModel>();
  private readonly opening = new Map<string, Promise<OpenModel>>();

  constructor(
    private readonly options: ModelOpenOptions,
    private readonly log: Logger,
    metrics?: SidecarMetrics,
  ) {
    metrics?.countOpenModels(() => this.models.size);
  }

  /** Hub sources (`org/name@rev`) → the commit pinned at their first open. */
  private readonly pins = new Map<string, string>();

  /**
   * Opens `source` (an absolute path of a .safetensors file or a model folder, or a Hub model
   * `org/name[@rev]`), or finds it open, and takes one open reference for `owner` (a session id, or
   * NO_SESSION: then only CloseModel drops it).
   * @throws ERR_CT_BAD_REQUEST (neither an absolute path nor a Hub reference), ERR_CT_HUB, ERR_CT_INTEGRITY
   *   (a download does not match the Hub's listing), and every error of CryptoTensorsReader.open
   *   (ERR_CT_IO for a missing path, ERR_CT_FORMAT for a folder without shards or a tensor name in two shards)
   */
  async open(source: string, opts: { refresh?: boolean; owner?: string } = {}): Promise<OpenModel> {
    if (typeof source !== "string" || !source)
      throw badRequest(
        "source is empty: pass the absolute path of a .safetensors file or a model folder, or a Hub model org/name[@revision]",
      );
    let real: string;
    let hub: HubOrigin | undefined;
    let requireEncrypted = requiredEncryption("serve", { allowPlaintext: this.options.allowPlaintext });
    if (isAbsolute(source)) {
      real = await realpath(source).catch((err: NodeJS.ErrnoException) => {
        throw new CryptoTensorsError("ERR_CT_IO", `cannot open ${source}: ${err.code ?? err.message}`, { cause: err });
      });
    } else {
      const ref = tryParseRepoRef(source);
      if (!ref) throw badRequest(`source must be an absolute path or a Hub model org/name[@revision], got ${JSON.stringify(source)}`);
      const snap = await this.fetchHub(ref, opts.refresh === true);
      real = snap.path;
      hub = { repo: ref.repo, revision: ref.revision, commit: snap.commit };
      if ((await readDeclaration(real))?.confidential) requireEncrypted = true;
    }
    const id = modelIdOf(real);
    let model = this.models.get(id);
    if (!model) {
      let pending = this.opening.get(id);
      if (!pending) {
        pending = this.openShards(id, real, requireEncrypted, hub).finally(() => this.opening.delete(id));
        this.opening.set(id, pending);
      }
      model = await pending;
    } else if (this.options.kms) {
      await this.options.kms.reauthorize(model.readers, this.log, { model_id: id }); // the key service may have revoked us since
    }
    const owner = opts.owner ?? NO_SESSION;
    model.openRefs.set(owner, (model.openRefs.get(owner) ?? 0) + 1);
    return model;
  }

  /** Resolves (or reuses the pinned commit of) a Hub reference and brings what the sidecar needs into the cache. */
  private async fetchHub(ref: RepoRef, refresh: boolean): Promise<{ path: string; commit: string }> {
    const settings = this.options.hub;
    if (!settings) throw badRequest(`Hub sources are not enabled in this sidecar (got ${ref.repo}); pass an absolute path`);
    const key = `${ref.repo}@${ref.revision}`;
    const pinned = refresh ? undefined : this.pins.get(key);
    const started = Date.now();
    const snap = await fetchSnapshot(ref, settings, { include: neededFromHub, commit: pinned });
    const { commit } = snap;
    const previous = this.pins.get(key);
    this.pins.set(key, commit);
    this.log.info("hub.snapshot", {
      repo: ref.repo,
      revision: ref.revision,
      commit,
      files: snap.files.length,
      downloaded: snap.downloaded.length,
      ms: Date.now() - started,
      ...(previous && previous !== commit ? { previous_commit: previous } : {}),
    });
    return { path: snap.path, commit };
  }

  /** Takes a load reference on an open model. @throws ERR_CT_MODEL_NOT_OPEN */
  acquire(id: string): OpenModel {
    const model = this.models.get(id);
    if (!model?.isOpen) throw new SidecarError("ERR_CT_MODEL_NOT_OPEN", `model ${JSON.stringify(id)} is not open: call OpenModel first`);
    model.loadRefs++;
    return model;
  }

  /** Drops a load reference taken with acquire(). */
  async releaseLoad(model: OpenModel): Promise<void> {
    model.loadRefs--;
    await this.closeIfUnused(model);
  }

  /** CloseModel: drops one open reference of `owner`. @throws ERR_CT_MODEL_NOT_OPEN (none held by that owner) */
  async close(id: string, owner: string = NO_SESSION): Promise<void> {
    const model = this.models.get(id);
    const refs = model?.openRefs.get(owner) ?? 0;
    if (!model || refs === 0)
      throw new SidecarError(
        "ERR_CT_MODEL_NOT_OPEN",
        `model ${JSON.stringify(id)} is not open${owner === NO_SESSION ? " outside a session" : " in this session"}`,
      );
    if (refs === 1) model.openRefs.delete(owner);
    else model.openRefs.set(owner, refs - 1);
    await this.closeIfUnused(model);
  }

  /** A client session ended: drops every open reference it holds. Returns how many models it held. */
  async releaseOwner(owner: string): Promise<number> {
    const held = [...this.models.values()].filter((m) => m.openRefs.has(owner));
    for (const m of held) m.openRefs.delete(owner);
    await Promise.all(held.map((m) => this.closeIfUnused(m)));
    return held.length;
  }

  /** Sources of the open models. */
  sources(): string[] {
    return [...this.models.values()].map((m) => (m.hub ? `${m.hub.repo}@${m.hub.commit}` : m.source)).sort();
  }

  /** Closes every model (shutdown), whatever its references. */
  async closeAll(): Promise<void> {
    await Promise.allSettled([...this.opening.values()]);
    const all = [...this.models.values()];
    this.models.clear();
    await Promise.all(all.map((m) => this.closeReaders(m)));
  }

  private async closeIfUnused(model: OpenModel): Promise<void> {
    if (model.isOpen || model.loadRefs > 0 || this.models.get(model.id) !== model) return;
    this.models.delete(model.id);
    await this.closeReaders(model);
  }

  private async closeReaders(model: OpenModel): Promise<void> {
    await Promise.all(model.readers.map((r) => r.close().catch(() => {})));
    this.log.info("model.closed", { model_id: model.id, source: model.source });
  }

  private async openShards(id: string, real: string, requireEncrypted: RequireEncrypted, hub: HubOrigin | undefined): Promise<OpenModel> {
    const isDir = await stat(real).then(
      (s) => s.isDirectory(),
      (err: NodeJS.ErrnoException) => {
        throw new CryptoTensorsError("ERR_CT_IO", `cannot open ${real}: ${err.code ?? err.message}`, { cause: err });
      },
    );
    const root = isDir ? real : dirname(real);
    // ONNX weight containers (onnx/*.onnx.cryptotensors) belong to transformers.js, not to this loader.
    const files = (await modelSafetensors(real)).filter((f) => !f.endsWith(".onnx.cryptotensors"));
    if (files.length === 0) throw new CryptoTensorsError("ERR_CT_FORMAT", `${real} holds no .safetensors file`);
    const { keys, trust, kms } = this.options;
    const checkRelease = () =>
      isDir ? checkFolderRelease(real, trust, this.options.release ?? {}, hub ? neededFromHub : undefined) : null;
    // The embedded policies, evaluated with their input before any key is used or asked for (fast path: default policies).
    const gate = await runPolicyGate(
      files,
      { trust, requireEncrypted },
      {
        source: hub ? `${hub.repo}@${hub.commit}` : real,
        repo: hub?.repo ?? null,
        revision: hub?.revision ?? null,
        commit: hub?.commit ?? null,
        model_id: id,
      },
      this.options.policy ?? { engine: defaultPolicyEngine(), claims: {} },
      kms,
      async () => checkRelease(),
    );
    if (gate.input) this.log.info("policy.allowed", { model_id: id, time: gate.input.time, release: gate.input.model.release });
    const readers: CryptoTensorsReader[] = [];
    const keyRelease = kms?.session(this.log, gate.beforeRelease); // keys held by a key service: one release per OpenModel
    try {
      for (const file of files) {
        const options = { keys: keys.length ? keys : undefined, trust, requireEncrypted, policyEngine: gate.readerEngine };
        readers.push(await (keyRelease ? keyRelease.open(file, options) : CryptoTensorsReader.open(file, options)));
      }
      const tensors: ManifestEntry[] = [];
      const seen = new Map<string, string>();
      for (const reader of readers) {
        const file = relative(root, reader.path);
        for (const t of reader.tensors) {
          const other = seen.get(t.name);
          if (other !== undefined) {
            throw new CryptoTensorsError("ERR_CT_FORMAT", `tensor ${JSON.stringify(t.name)} is in two shards: ${other} and ${file}`);
          }
          seen.set(t.name, file);
          tensors.push({
            name: t.name,
            dtype: t.dtype,
            shape: [...t.shape],
            byteSize: t.end - t.begin,
            encrypted: reader.isEncrypted(t.name),
            file,
            reader,
          });
        }
      }
      if (isDir) {
        // The shard index (plaintext) must describe exactly the shards' tensors: a dropped or renamed
        // shard is an error here, not a model with randomly initialised weights later.
        const namesByFile = new Map(readers.map((r) => [relative(root, r.path), r.tensors.map((t) => t.name)]));
        for (const index of (await listModelFiles(real)).indexes) {
          await checkShardIndex(real, index, async (shard) => {
            const names = namesByFile.get(shard);
            if (!names) throw new CryptoTensorsError("ERR_CT_FORMAT", `missing shard ${shard}`);
            return names;
          });
        }
      }
      // The release (headers only): every file this loader uses must be the signed release's. After each
      // shard's own checks, so that a shard refused on its own is reported as such.
      const release = gate.release !== undefined ? gate.release : await checkRelease();
      const kids = new Set(readers.map((r) => (r.signer ? (r.signer.kid ?? "") : null)));
      // One kid only when every shard was verified by the same trusted key.
      const signerKid = kids.size === 1 && !kids.has(null) ? ([...kids][0] ?? "") : "";
      const model = new OpenModel(id, real, readers, tensors, Object.fromEntries(readers[0]!.userMetadata() ?? []), signerKid, hub);
      for (const t of tensors) model.byName.set(t.name, t);
      this.models.set(id, model);
      this.log.info("model.opened", {
        model_id: id,
        source: hub ? `${hub.repo}@${hub.commit}` : real,
        shards: files.length,
        tensors: tensors.length,
        bytes: model.totalBytes,
        encrypted: tensors.filter((t) => t.encrypted).length,
        signer_kid: signerKid,
        ...(release ? { release: release.release, release_model: release.model } : {}),
      });
      return model;
    } catch (err) {
      await Promise.all(readers.map((r) => r.close().catch(() => {})));
      throw err; // logged once, where it becomes a status
    } finally {
      keyRelease?.dispose();
    }
  }
}
