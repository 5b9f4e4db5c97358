// Where the sidecar listens, and the checks on that place: the socket's directory must be private
// to the sidecar's user (it holds the token file), and a socket left by a dead sidecar is replaced
// only once nothing answers on it.

import { lstat, mkdir, chmod, rm } from "node:fs/promises";
import { connect } from "node:net";
import { CryptoTensorsError } from "../index.js";
import { notPrivate } from "../io/private-dir.js";
import { tokenPathOf } from "./auth.js";

/** The default socket rule lives in the ctensors package (the CLI applies it too). */
export { defaultSocketPath, SOCKET_ENV } from "../index.js";
/** sockaddr_un.sun_path holds 108 bytes, the last one a NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;

function ioError(message: string, cause?: unknown): CryptoTensorsError {
  return new CryptoTensorsError("ERR_CT_IO", message, cause === undefined ? undefined : { cause });
}

/** The socket path cannot be used: the CLI adds its flag hint (another socket, in a directory of one's own). */
function socketError(message: string): CryptoTensorsError {
  return new CryptoTensorsError("ERR_CT_IO", message, { option: "socket" });
}

/**
 * Creates the socket's directory with mode 0700 if missing; refuses one that is not a real directory,
 * not owned by this user, or open to group/other.
 * @throws ERR_CT_IO
 */
export async function prepareSocketDir(dir: string): Promise<void> {
  const created = await mkdir(dir, { recursive: true, mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
    throw ioError(`cannot create the socket directory ${dir}: ${err.code ?? err.message}`, err);
  });
  if (created !== undefined) await chmod(dir, 0o700); // the umask may have taken bits away
  // The rule of every folder that holds a secret (here the token file): io/private-dir.ts.
  const problem = notPrivate(await lstat(dir));
  if (!problem) return;
  if (problem.why === "not-directory") throw socketError(`the socket directory ${dir} is not a directory (a symlink?)`);
  if (problem.why === "owner") {
    throw socketError(`the socket directory ${dir} belongs to uid ${problem.owner}, not to this user (uid ${problem.uid})`);
  }
  throw socketError(
    `the socket directory ${dir} has mode ${(problem.mode & 0o777).toString(8).padStart(4, "0")}: group and others must have no access`,
  );
}

function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(socketPath);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/**
 * Removes a socket (and its token file) left by a sidecar that is gone. Refuses when something still
 * answers on the socket, or when the path is not a socket.
 * @throws ERR_CT_IO
 */
export async function clearStaleSocket(socketPath: string): Promise<void> {
  const st = await lstat(socketPath).catch(() => null);
  if (st) {
    if (!st.isSocket()) throw socketError(`${socketPath} exists and is not a socket`);
    if (await answers(socketPath)) throw ioError(`another sidecar is already serving on ${socketPath}`);
    await rm(socketPath, { force: true });
  }
  await rm(tokenPathOf(socketPath), { force: true });
}
