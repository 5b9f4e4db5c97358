// The two file operations Node lacks for unnamed temporary files: the value of O_TMPFILE for this
// architecture and linkat(2) with AT_SYMLINK_FOLLOW on /proc/self/fd/N. Both come from the native
// addon (plugin/native, built with gcc by `npm run build`, loaded by native-addon.ts); without it, or
// with CTENSORS_ENGINE=js (no native code at all), callers fall back to named temporary files (see
// files.ts).

import { loadNativeAddon } from "../native-addon.js";

export interface NativeFs {
  /** open(2) flag: an unnamed file in the given directory. */
  O_TMPFILE: number;
  /** Gives the open unnamed file `fd` the name `path`, which must not exist. Throws an Error with an errno `code`. */
  linkFd(fd: number, path: string): void;
}

let loaded: NativeFs | null | undefined;

/** The addon's file helpers, or null when unnamed temporaries cannot be used here. */
export function nativeFs(): NativeFs | null {
  if (process.platform !== "linux" || process.env.CTENSORS_ENGINE === "js") return null;
  if (loaded === undefined) {
    const m = loadNativeAddon().addon as Partial<NativeFs> | null;
    loaded = m && typeof m.linkFd === "function" && typeof m.O_TMPFILE === "number" ? (m as NativeFs) : null;
  }
  return loaded;
}
