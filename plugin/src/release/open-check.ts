// The one rule applied wherever a model folder is opened (verify, decrypt, the sidecar, the
// transformers.js hook): the folder's release manifest must verify, unless the operator opted out of
// releases for folders that have none; where a release history is kept, older releases are refused.

import { access } from "node:fs/promises";
import { join } from "node:path";
import type { TrustStore } from "../keys/trust.js";
import { verifyRelease, type ReleaseInfo } from "./manifest.js";
import { RELEASE_MANIFEST_FILE } from "./oms.js";
import type { ReleaseHistory } from "./rollback.js";

export interface ReleasePolicy {
  /** Accept a folder without a release manifest (`--allow-unsigned-release`). A manifest that is present is always checked. */
  allowUnsigned?: boolean;
  /** Rollback state (the sidecar's); none: no rollback check. */
  history?: ReleaseHistory | undefined;
  /** Accept an older release than the newest accepted (`--allow-rollback`). */
  allowRollback?: boolean;
  /** Re-hash every file in full (`verify --full-hash`). */
  fullHash?: boolean;
}

export async function hasReleaseManifest(root: string): Promise<boolean> {
  return access(join(root, RELEASE_MANIFEST_FILE)).then(
    () => true,
    () => false,
  );
}

/**
 * Checks the release of the folder `root`: null when it has no manifest and `allowUnsigned`.
 * @throws what verifyRelease throws, and ERR_CT_INTEGRITY for a refused rollback
 */
export async function checkFolderRelease(
  root: string,
  trust: TrustStore | undefined,
  policy: ReleasePolicy = {},
  include?: (name: string) => boolean,
): Promise<ReleaseInfo | null> {
  if (policy.allowUnsigned && !(await hasReleaseManifest(root))) return null;
  const info = await verifyRelease(root, { trust, include, fullHash: policy.fullHash });
  if (policy.history) await policy.history.accept(info, { allowRollback: policy.allowRollback });
  return info;
}
