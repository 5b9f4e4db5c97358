// Folders that hold secrets (keys) must be private to this user: a real directory (not a symbolic
// link), owned by this user, with no access for group or others. A missing folder is created with
// mode 0700. The sidecar's socket directory uses the same rule (notPrivate). Messages never suggest changing the mode
// of a folder that may be shared (such as /tmp): they ask for another folder.

import type { Stats } from "node:fs";
import { chmod, lstat, mkdir } from "node:fs/promises";
import { CryptoTensorsError } from "../errors.js";
import { mapIoErrors } from "./io-error.js";

/** Why a folder is not private to this user, or null when it is: the one rule for secret-holding folders. */
export type NotPrivate = { why: "not-directory" } | { why: "owner"; uid: number; owner: number } | { why: "mode"; mode: number };

/** The rule itself, on the folder's lstat: a real directory, owned by this user, no group/other access. */
export function notPrivate(st: Stats, uid: number | undefined = process.getuid?.()): NotPrivate | null {
  if (!st.isDirectory()) return { why: "not-directory" };
  if (uid !== undefined && st.uid !== uid) return { why: "owner", uid, owner: st.uid };
  if ((st.mode & 0o077) !== 0) return { why: "mode", mode: st.mode };
  return null;
}

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
  const problem = notPrivate(await mapIoErrors(dir, "reading", () => lstat(dir)));
  if (!problem) return;
  const remedy = `choose another ${option}: a folder of your own that only you can access (a new one is created with mode 0700)`;
  if (problem.why === "not-directory") throw new CryptoTensorsError("ERR_CT_IO", `${dir} is not a directory: ${remedy}`);
  if (problem.why === "owner") {
    throw new CryptoTensorsError("ERR_CT_IO", `${dir} belongs to uid ${problem.owner}, not to this user (uid ${problem.uid}): ${remedy}`);
  }
  throw new CryptoTensorsError(
    "ERR_CT_IO",
    `${dir} has mode ${(problem.mode & 0o7777).toString(8).padStart(4, "0")}, open to group or others: ${remedy}`,
  );
}
