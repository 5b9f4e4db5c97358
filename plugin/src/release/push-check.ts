// What `push` does about releases: a confidential upload (every weight file encrypted) must carry its
// signed release manifest unless the caller opts out, and a repo receiving a release keeps no file
// from an earlier upload that the release does not list (it would be an extra file to every reader).

import { CryptoTensorsError } from "../errors.js";
import { isIgnored } from "./release-files.js";
import { DEFAULT_IGNORE_PATHS, RELEASE_MANIFEST_FILE } from "./oms.js";

export function releaseFileCheck(
  localFiles: readonly string[],
  confidential: boolean,
  allowUnsigned: boolean,
): { stale: (remotePath: string) => boolean } {
  const hasManifest = localFiles.includes(RELEASE_MANIFEST_FILE);
  if (confidential && !hasManifest && !allowUnsigned) {
    throw new CryptoTensorsError(
      "ERR_CT_INTEGRITY",
      `refusing to push a confidential model without its signed release manifest (${RELEASE_MANIFEST_FILE}): encrypt the folder with ctensors encrypt, or add one with ctensors sign-release (--allow-unsigned-release pushes without)`,
    );
  }
  const local = new Set(localFiles);
  return { stale: (p) => hasManifest && !local.has(p) && !isIgnored(p, DEFAULT_IGNORE_PATHS) };
}
