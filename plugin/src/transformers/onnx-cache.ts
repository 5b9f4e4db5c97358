// The object installed as transformers.js' `env.customCache`: `match` answers requests for the ONNX
// files of encrypted models from the ModelStore, and requests for the other files of a model that has a
// signed release (config, tokenizer, templates…) with their bytes once checked against it (release-check.ts);
// `put` stores nothing, so no response is ever cached.

import type { TransformersEnv } from "./core.js";
import { failingResponse, fileResponse } from "./failing-response.js";
import type { ModelStore } from "./model-store.js";
import type { HookRelease } from "./release-check.js";
import { basename, isHttpUrl, localRel, ONNX_REQUEST, remoteRel, requestKey } from "./request-keys.js";

export class OnnxCache {
  /** `<model id>/<file>` of local graphs that loaded, for the remote-URL key transformers.js asks next. */
  readonly #localHits = new Map<string, string>();

  constructor(
    private readonly env: TransformersEnv,
    private readonly store: ModelStore,
    private readonly release: HookRelease,
  ) {}

  async match(request: string): Promise<Response | undefined> {
    const key = requestKey(request);
    const isLocal = !isHttpUrl(key);
    if (isLocal && this.env.allowLocalModels === false) return undefined;
    const m = ONNX_REQUEST.exec(key);
    if (!m) return this.#releaseFile(key, isLocal);
    const graphKey = isLocal ? m[1]! : this.#localGraphFor(m[1]!);
    const rel = localRel(this.env, graphKey);
    try {
      const entry = await this.store.entryFor(graphKey);
      if (rel && entry.kind !== "absent") this.#localHits.set(rel, graphKey);
      if (entry.kind !== "model") return undefined;
      const name = basename(key);
      const bytes = entry.files.get(name);
      return bytes ? fileResponse(bytes, () => this.store.take(graphKey, entry, name)) : undefined;
    } catch (err) {
      if (rel) this.#localHits.set(rel, graphKey); // the remote key asked next must fail the same way
      return failingResponse(err);
    }
  }

  /** A file other than an ONNX file: served (checked) when a release covers it, else left to transformers.js. */
  async #releaseFile(key: string, isLocal: boolean): Promise<Response | undefined> {
    if (!isLocal && this.env.allowRemoteModels === false) return undefined; // never fetch what transformers.js would not
    try {
      const bytes = await this.release.checkedFile(key);
      return bytes ? fileResponse(bytes) : undefined;
    } catch (err) {
      return failingResponse(err);
    }
  }

  // Nothing is ever stored: responses (config, tokenizer) are simply not cached.
  async put(_request: string, _response: Response): Promise<void> {}

  async delete(_request: string): Promise<boolean> {
    return false;
  }

  /** Drops the decrypted models (zeroing them) and what was learnt about local paths. */
  forget(): void {
    this.store.forget();
    this.#localHits.clear();
  }

  /** transformers.js asks the remote key again after a hit on the local path: answer it from the local load. */
  #localGraphFor(remoteGraphKey: string): string {
    const rel = remoteRel(this.env, remoteGraphKey);
    return (rel ? this.#localHits.get(rel) : undefined) ?? remoteGraphKey;
  }
}
