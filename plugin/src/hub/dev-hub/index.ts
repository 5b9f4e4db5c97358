// A local, Hub-compatible development server (see docs/dev-hub.md).

export { startDevHub, type DevHub, type DevHubOptions } from "./server.js";
export { uploadMode, LFS_EXTENSIONS, LFS_SIZE_THRESHOLD } from "./routes.js";
