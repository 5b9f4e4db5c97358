// Rollback protection: the newest release accepted for each (model identity, signer), kept in a JSON
// state file. Every check-and-record happens under an inter-process lock (proper-lockfile: a lock
// directory beside the file, stale locks of dead holders taken over), and the file is replaced
// atomically (write a temporary file, fsync, rename), so two sidecars on one host never lose each
// other's records and a crash leaves the old or the new state, never a torn one.

import { mkdir, readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import lockfile from "proper-lockfile";
import { CryptoTensorsError } from "../errors.js";
import { withAtomicFile, writeAll } from "../io/files.js";
import type { ReleaseInfo } from "./manifest.js";

/** Overrides the default state file (as `--release-state`). */
export const RELEASE_STATE_ENV = "CTENSORS_RELEASE_STATE";

/** $CTENSORS_RELEASE_STATE, else $XDG_STATE_HOME/ctensors/releases.json, else ~/.local/state/ctensors/releases.json. */
export function defaultReleaseStatePath(env: NodeJS.ProcessEnv = process.env): string {
  if (env[RELEASE_STATE_ENV]) return env[RELEASE_STATE_ENV];
  const base = env.XDG_STATE_HOME || join(homedir(), ".local", "state");
  return join(base, "ctensors", "releases.json");
}

interface Record_ {
  model: string;
  signer: string;
  release: number;
  manifest_sha256: string;
  accepted_at: string;
}

interface State {
  version: 1;
  releases: Record<string, Record_>;
}

const keyOf = (model: string, signer: string) => `${signer}/${model}`;

async function readState(path: string): Promise<State> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { version: 1, releases: {} };
    throw new CryptoTensorsError("ERR_CT_IO", `cannot read the release state ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`, {
      cause: err,
    });
  }
  try {
    const state = JSON.parse(text) as State;
    if (state.version !== 1 || typeof state.releases !== "object" || state.releases === null) throw new Error("unknown version");
    return state;
  } catch (err) {
    // Never silently start over: an unreadable state would re-open the door to every old release.
    throw new CryptoTensorsError("ERR_CT_FORMAT", `the release state ${path} is corrupt; fix or remove it deliberately`, { cause: err });
  }
}

export interface ReleaseHistoryOptions {
  /** Accept an older release than the newest seen (the record is not lowered). */
  allowRollback?: boolean;
}

export class ReleaseHistory {
  constructor(readonly path: string) {}

  /** The newest release accepted for (model, signer fingerprint), or null. */
  async newest(model: string, signer: string): Promise<number | null> {
    return (await readState(this.path)).releases[keyOf(model, signer)]?.release ?? null;
  }

  /**
   * Accepts `info` unless an older release than the newest recorded for its model and signer, and
   * records it when newer. @throws ERR_CT_INTEGRITY (a rollback), ERR_CT_IO, ERR_CT_FORMAT (a corrupt state)
   */
  async accept(info: ReleaseInfo, options: ReleaseHistoryOptions = {}): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    let unlock: () => Promise<void>;
    try {
      unlock = await lockfile.lock(this.path, {
        realpath: false,
        stale: 10_000,
        retries: { retries: 50, minTimeout: 20, maxTimeout: 200 },
      });
    } catch (err) {
      throw new CryptoTensorsError("ERR_CT_IO", `cannot lock the release state ${this.path}: ${(err as Error).message}`, { cause: err });
    }
    try {
      const state = await readState(this.path);
      const key = keyOf(info.model, info.signerFingerprint);
      const seen = state.releases[key];
      if (seen && info.release < seen.release) {
        if (!options.allowRollback) {
          throw new CryptoTensorsError(
            "ERR_CT_INTEGRITY",
            `rollback refused: ${info.model} release ${info.release} is older than release ${seen.release}, already accepted from the same signer (pass --allow-rollback to accept it)`,
          );
        }
        return;
      }
      if (seen && seen.release === info.release && seen.manifest_sha256 === info.manifestDigest) return;
      state.releases[key] = {
        model: info.model,
        signer: info.signerFingerprint,
        release: info.release,
        manifest_sha256: info.manifestDigest,
        accepted_at: new Date().toISOString(),
      };
      const bytes = new TextEncoder().encode(`${JSON.stringify(state, null, 2)}\n`);
      await withAtomicFile(this.path, 0o600, (fh) => writeAll(fh, bytes, 0));
    } finally {
      await unlock().catch(() => {});
    }
  }
}
