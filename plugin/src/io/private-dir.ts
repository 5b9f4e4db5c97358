// Folders that hold secrets (keys) must be private to this user: a real directory (not a symbolic
// link), owned by this user, with no access for group or others. A missing folder is created with
// mode 0700. The same rule as the sidecar's socket directory. Messages never suggest changing the mode
// of a folder that may be shared (such as /tmp): they ask for another folder.

import { chmod, lstat, mkdir } from "node:fs/promises";
import { CryptoTensorsError } from "../errors.js";
import { mapIoErrors } from "./io-error.js";

/**
 * Creates `dir` (mode 0700) if missing, then checks it is private to this user.
 * `option` names the command-line option that chose it (for the remedy).
 * @throws ERR_CT_IO
 */
export async function ensurePrivateDirectory(dir: string, option: string): Promise<void> {
  const before = await lstat(dir).catch(() => null);
  if (before && !before.isDirectory()) {
    throw new CryptoTensorsError(
      "ERR_CT_IO",
      `${dir} exists and is not a directory${before.isSymbolicLink() ? " (a symbolic link, not followed for secrets)" : ""}: choose another ${option}`,
    );
  }
  if (!before) {
    const created = await mapIoErrors(dir, "creating", () => mkdir(dir, { recursive: true, mode: 0o700 }));
    if (created !== undefined) await mapIoErrors(dir, "creating", () => chmod(dir, 0o700)); // the umask may have taken bits away
  }
  const st = await mapIoErrors(dir, "reading", () => lstat(dir));
  const uid = process.getuid?.();
  const remedy = `choose another ${option}: a folder of your own that only you can access (a new one is created with mode 0700)`;
  if (!st.isDirectory()) throw new CryptoTensorsError("ERR_CT_IO", `${dir} is not a directory: ${remedy}`);
  if (uid !== undefined && st.uid !== uid) {
    throw new CryptoTensorsError("ERR_CT_IO", `${dir} belongs to uid ${st.uid}, not to this user (uid ${uid}): ${remedy}`);
  }
  if ((st.mode & 0o077) !== 0) {
    throw new CryptoTensorsError(
      "ERR_CT_IO",
      `${dir} has mode ${(st.mode & 0o7777).toString(8).padStart(4, "0")}, open to group or others: ${remedy}`,
    );
  }
}
