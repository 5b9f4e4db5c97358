// Signed releases (docs/format.md §13): the `ctensors/release` entry point.

export {
  writeRelease,
  verifyRelease,
  peekRelease,
  fingerprintOf,
  checkReleaseNumber,
  RELEASE_PREDICATE_FIELD,
  type ReleaseInfo,
  type WriteReleaseOptions,
  type VerifyReleaseOptions,
} from "./manifest.js";
export { RELEASE_MANIFEST_FILE, DEFAULT_IGNORE_PATHS } from "./oms.js";
export { loadOmsKey, type OmsKey } from "./signers.js";
export { ReleaseHistory, defaultReleaseStatePath, RELEASE_STATE_ENV } from "./rollback.js";
export { checkFolderRelease, hasReleaseManifest, type ReleasePolicy } from "./open-check.js";
export { headerDigest } from "./release-files.js";
