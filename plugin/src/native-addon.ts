// The one place that loads the native addon (plugin/native/ctensors_native.c): node-gyp-build finds
// the prebuilt file for this platform under the package's prebuilds/ folder, where `npm run build`
// and `npm pack` put it. Both users of the addon (the AEAD engine in crypto/engine.ts and the
// unnamed-file helpers in io/native-fs.ts) go through here, so they cannot disagree on where it is.

import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The package root (from src/ or dist/), whose prebuilds/ folder holds the addon. */
export const PACKAGE_ROOT = fileURLToPath(new URL("..", import.meta.url));

/** How a user gets the addon where no prebuilt one fits (shown with the reason). */
export const BUILD_HINT = `build it for this platform with: node ${join(PACKAGE_ROOT, "native", "build.mjs")} (needs gcc)`;

let loaded: { addon: unknown; error: string | null } | undefined;

/** The addon's exports, or null with the first line of the loader's error. Loaded once. */
export function loadNativeAddon(): { addon: unknown; error: string | null } {
  if (loaded) return loaded;
  try {
    const require = createRequire(import.meta.url);
    const nodeGypBuild = require("node-gyp-build") as (dir: string) => unknown;
    loaded = { addon: nodeGypBuild(PACKAGE_ROOT), error: null };
  } catch (err) {
    loaded = { addon: null, error: (err as Error).message.split("\n")[0] ?? String(err) };
  }
  return loaded;
}
