// Hub support: push, pull into the shared HF cache, repo references, settings.
export { parseRepoRef, tryParseRepoRef, isRepoRef, repoFolderName, COMMIT_SHA, type RepoRef } from "./repo-ref.js";
export { hubSettings, DEFAULT_HUB_URL, type HubOptions, type HubSettings } from "./settings.js";
export { fetchSnapshot, resolveRevision, type Snapshot, type SnapshotOptions, type SnapshotProgress } from "./snapshot.js";
export { pushModel, type PushOptions, type PushResult, type PushEvent } from "./push.js";
export { DECLARATION_FILE, readDeclaration, type Declaration } from "./declaration.js";
export { RepoCache } from "./cache.js";
