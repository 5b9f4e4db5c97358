// Release options shared by the commands: writing a release manifest (encrypt, rewrap, sign-release)
// and checking one where a folder is opened (verify, decrypt, serve).

import { listModelFiles } from "../model/folder.js";
import { basename, join, resolve } from "node:path";
import type { SigningKey } from "../keys/jwk.js";
import { checkReleaseNumber, peekRelease, writeRelease } from "../release/manifest.js";
import { RELEASE_MANIFEST_FILE } from "../release/oms.js";
import { checkFolderRelease, type ReleasePolicy } from "../release/open-check.js";
import type { ReleaseInfo } from "../release/manifest.js";
import type { TrustStore } from "../keys/trust.js";
import { isDirectory } from "../model/folder.js";
import { defaultReleaseStatePath, ReleaseHistory } from "../release/rollback.js";
import { loadOmsKey } from "../release/signers.js";
import type { CommandOptions, OptionValues } from "./command.js";

export const RELEASE_WRITE_OPTIONS = {
  "model-id": { type: "string" },
  release: { type: "string" },
  "oms-key": { type: "string" },
} as const;
export const RELEASE_WRITE_USAGE = "[--model-id ID] [--release N] [--oms-key ec-private.pem]";

/** verify and decrypt. */
export const RELEASE_OPEN_OPTIONS = {
  "allow-unsigned-release": { type: "boolean", default: false },
} as const;

/** serve (and vllm, which starts serve). */
export const RELEASE_SERVE_OPTIONS = {
  ...RELEASE_OPEN_OPTIONS,
  "allow-rollback": { type: "boolean", default: false },
  "release-state": { type: "string" },
} as const;
export const RELEASE_SERVE_USAGE = "[--allow-unsigned-release] [--allow-rollback] [--release-state FILE]";

/** The values of a command whose options include the option set `O` (its own values only). */
type ValuesOf<O extends CommandOptions> = Pick<OptionValues<O>, keyof O & keyof OptionValues<O>>;

export function releasePolicyFromArgs(values: ValuesOf<typeof RELEASE_OPEN_OPTIONS>): ReleasePolicy {
  return { allowUnsigned: values["allow-unsigned-release"] === true };
}

/** Checks the release of `input` when it is a folder (verify, decrypt, rewrap); null for a file or an allowed unsigned folder. */
export async function checkInputRelease(
  input: string,
  trust: TrustStore | undefined,
  values: ValuesOf<typeof RELEASE_OPEN_OPTIONS>,
  extra: ReleasePolicy = {},
): Promise<ReleaseInfo | null> {
  if (!(await isDirectory(input))) return null;
  // The folder's own listing first: it refuses weight files that are not regular files (a FIFO would
  // otherwise be reported as a file missing from the release).
  await listModelFiles(input);
  return checkFolderRelease(input, trust, { ...releasePolicyFromArgs(values), ...extra });
}

/** The sidecar's policy: a persistent release history unless told otherwise. */
export function servePolicyFromArgs(values: ValuesOf<typeof RELEASE_SERVE_OPTIONS>): ReleasePolicy {
  return {
    allowUnsigned: values["allow-unsigned-release"] === true,
    allowRollback: values["allow-rollback"] === true,
    history: new ReleaseHistory(values["release-state"] ?? defaultReleaseStatePath()),
  };
}

/**
 * The manifest writer for encrypt/rewrap: identity from --model-id, else the input's manifest, else the
 * input folder's name; release from --release, else one past the input's and never below the current
 * Unix time (so that successive releases of a model increase without bookkeeping).
 */
export async function releaseWriter(
  values: ValuesOf<typeof RELEASE_WRITE_OPTIONS>,
  input: string,
  signKey: SigningKey,
): Promise<(outRoot: string) => Promise<string[]>> {
  const previous = await peekRelease(input).catch(() => null);
  const model = values["model-id"] ?? previous?.model ?? basename(resolve(input));
  const release =
    values.release !== undefined
      ? checkReleaseNumber(values.release, "--release")
      : Math.max(Math.floor(Date.now() / 1000), (previous?.release ?? -1) + 1);
  const omsKey = values["oms-key"] ? await loadOmsKey(values["oms-key"]) : undefined;
  return async (outRoot) => {
    await writeRelease(outRoot, { signKey, omsKey, model, release });
    return [join(outRoot, RELEASE_MANIFEST_FILE)];
  };
}
