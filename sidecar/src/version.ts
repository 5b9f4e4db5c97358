// The sidecar's version, from its package.json (reported by Health and in the startup line).

import { readFileSync } from "node:fs";

export const SIDECAR_VERSION: string = (
  JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }
).version;
