// A local, Hub-compatible development server (see docs/dev-hub.md).

export { createRouter, startDevHub, type DevHub, type DevHubOptions } from "./server.js";
export type { Router } from "./routes.js";
export { uploadMode, LFS_EXTENSIONS, LFS_SIZE_THRESHOLD } from "./routes.js";
