// The sidecar's version (reported by Health and in the startup line): the package's one version.

export { VERSION as SIDECAR_VERSION } from "../version.js";
