// The version of ctensors: the package's own package.json (plugin/package.json), the one source of
// truth. `ctensors --version` prints it, the sidecar reports it in Health and its startup line, and the
// Python package (python-shim/src/ctensors/_version.py) must carry the same (test/packaging checks).

import { readFileSync } from "node:fs";

/** Read from ../package.json: the package root from src/ and from dist/ alike. */
export const VERSION: string = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string })
  .version;
