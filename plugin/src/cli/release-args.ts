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

const RELEASE = "Release manifest options (model folders)";

/** encrypt, rewrap and sign-release: what the release manifest (model.sig) they write says. */
export const RELEASE_WRITE_OPTIONS = {
  "model-id": {
    type: "string",
    value: "ID",
    description: "the model's identity in the release manifest",
    defaultText: "the input's manifest's, else the input folder's name",
    group: RELEASE,
  },
  release: {
    type: "string",
    value: "N",
    description: "the release number (an integer; the sidecar refuses releases older than the newest it accepted)",
    defaultText: "one past the input's, and at least the current Unix time",
    group: RELEASE,
  },
  "oms-key": {
    type: "string",
    value: "PEM",
    description: "an ECDSA P-256/384/521 private key: adds the signature OpenSSF Model Signing verifies",
    group: RELEASE,
  },
} as const satisfies CommandOptions;

/** verify and decrypt. */
export const RELEASE_OPEN_OPTIONS = {
  "allow-unsigned-release": {
    type: "boolean",
    default: false,
    description: "accept a model folder without a signed release manifest (model.sig)",
    group: RELEASE,
  },
} as const satisfies CommandOptions;

/** serve (and vllm, which starts serve). */
export const RELEASE_SERVE_OPTIONS = {
  ...RELEASE_OPEN_OPTIONS,
  "allow-rollback": {
    type: "boolean",
    default: false,
    description: "accept a release older than the newest accepted for the same model and signer",
    group: RELEASE,
  },
  "release-state": {
    type: "string",
    value: "FILE",
    description: "where the newest accepted releases are recorded",
    defaultText: "$CTENSORS_RELEASE_STATE, else $XDG_STATE_HOME/ctensors/releases.json, else ~/.local/state/ctensors/releases.json",
    group: RELEASE,
  },
} as const satisfies CommandOptions;

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
