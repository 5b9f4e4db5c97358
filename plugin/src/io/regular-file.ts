// Opening model files for reading, refusing anything that is not a regular file. Opening a FIFO blocks
// until a writer appears, and Node does it on one of its few I/O threads: a handful of FIFOs would hang
// `verify` forever and stall every other file operation of a sidecar. So the path is stat()ed first
// (symlinks resolved: the HF cache is made of them), then opened with O_NONBLOCK (which makes the open
// of a FIFO return at once and changes nothing for a regular file) and fstat()ed, so that a file
// swapped in between the two steps is caught too.

import { constants } from "node:fs";
import { open, stat, type FileHandle } from "node:fs/promises";
import type { Stats } from "node:fs";
import { CryptoTensorsError } from "../errors.js";

/** What a non-regular file is, for messages. */
function kindOf(s: Stats): string {
  if (s.isDirectory()) return "a directory";
  if (s.isFIFO()) return "a FIFO (named pipe)";
  if (s.isSocket()) return "a socket";
  if (s.isCharacterDevice()) return "a character device";
  if (s.isBlockDevice()) return "a block device";
  return "not a regular file";
}

export function notRegularFile(path: string, s: Stats): CryptoTensorsError {
  return new CryptoTensorsError(
    "ERR_CT_IO",
    `${path} is ${kindOf(s)}, not a regular file: only regular files (or symlinks to them) are read`,
  );
}

/** stat() with errors as ERR_CT_IO. */
async function statOrThrow(path: string): Promise<Stats> {
  try {
    return await stat(path);
  } catch (err) {
    throw new CryptoTensorsError("ERR_CT_IO", `cannot open ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err });
  }
}

/** Throws ERR_CT_IO unless `path` is (a symlink to) a regular file. Never blocks on a FIFO. */
export async function assertRegularFile(path: string): Promise<void> {
  const s = await statOrThrow(path);
  if (!s.isFile()) throw notRegularFile(path, s);
}

/**
 * Opens `path` read-only if it is (a symlink to) a regular file.
 * @throws ERR_CT_IO (missing, unreadable, or not a regular file)
 */
export async function openRegularFile(path: string): Promise<FileHandle> {
  await assertRegularFile(path);
  let fh: FileHandle;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw new CryptoTensorsError("ERR_CT_IO", `cannot open ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err });
  }
  try {
    const s = await fh.stat();
    if (!s.isFile()) throw notRegularFile(path, s);
    return fh;
  } catch (err) {
    await fh.close();
    throw err;
  }
}
