// Output files appear whole or not at all. Where the native addon and the file system allow it, the
// data goes to an unnamed file (O_TMPFILE) in the target's folder, which gets its name (linkat) only
// once complete and synced: an interrupted process, even one killed with SIGKILL, leaves nothing. A
// target that exists already is replaced by linking to a hidden name and renaming over it. Elsewhere
// (no addon, CTENSORS_ENGINE=js, a file system without O_TMPFILE) a hidden named temporary beside the
// target is used instead, renamed into place on success, removed on failure and on a catchable signal
// (temporaries.ts, cli/signals.ts); only SIGKILL can leave it behind. No step follows a symbolic link
// at the target: a link or rename replaces the link itself.

import { constants } from "node:fs";
import { link, open, rename, rm, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { ioError, mapIoErrors } from "./io-error.js";
import { nativeFs, type NativeFs } from "./native-fs.js";
import { stageHolding } from "./staged-folder.js";
import { hiddenSibling, trackTemporary } from "./temporaries.js";
import { testPause } from "./test-pause.js";
import { CryptoTensorsError } from "../errors.js";

export interface AtomicFileOptions {
  /** Replace a file that exists at the target (default true); false: ERR_CT_IO when the target exists. */
  replace?: boolean | undefined;
}

/** errno codes of open(O_TMPFILE) that mean "not supported here" (old kernel, file system without it). */
const NO_TMPFILE = new Set(["EOPNOTSUPP", "ENOTSUP", "EISDIR", "EINVAL"]);

/**
 * Creates `target` (mode `mode`) with the bytes `write` puts into the handle; the file appears only
 * when `write` resolved and the data is synced.
 * @throws ERR_CT_IO (with the path and a remedy) for file-system errors, and whatever `write` throws
 */
export async function withAtomicFile<T>(
  target: string,
  mode: number,
  write: (fh: FileHandle) => Promise<T>,
  options: AtomicFileOptions = {},
): Promise<T> {
  const replace = options.replace ?? true;
  const native = nativeFs();
  const unnamed = native ? await openUnnamed(native, target, mode) : null;
  return unnamed ? writeUnnamed(native!, unnamed, target, replace, write) : writeNamed(target, mode, replace, write);
}

async function openUnnamed(native: NativeFs, target: string, mode: number): Promise<FileHandle | null> {
  try {
    return await open(dirname(target), native.O_TMPFILE | constants.O_RDWR, mode);
  } catch (err) {
    if (NO_TMPFILE.has((err as NodeJS.ErrnoException).code ?? "")) return null;
    throw ioError(err, target, "creating");
  }
}

async function writeUnnamed<T>(
  native: NativeFs,
  fh: FileHandle,
  target: string,
  replace: boolean,
  write: (fh: FileHandle) => Promise<T>,
): Promise<T> {
  let held = false;
  try {
    const result = await write(fh);
    await fh.sync();
    await testPause("file");
    held = stageHolding(target)?.hold(fh, target, native) ?? false;
    if (!held) await linkUnnamed(native, fh, target, replace);
    return result;
  } catch (err) {
    throw ioError(err, target, "writing");
  } finally {
    if (!held) await fh.close().catch(() => {});
  }
}

async function linkUnnamed(native: NativeFs, fh: FileHandle, target: string, replace: boolean): Promise<void> {
  try {
    native.linkFd(fh.fd, target);
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST" || !replace) throw ioError(err, target, "creating");
  }
  const tmp = hiddenSibling(target, "tmp");
  const release = trackTemporary(tmp);
  try {
    native.linkFd(fh.fd, tmp);
    await rename(tmp, target);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => {});
    throw ioError(err, target, "replacing");
  } finally {
    release();
  }
}

async function writeNamed<T>(target: string, mode: number, replace: boolean, write: (fh: FileHandle) => Promise<T>): Promise<T> {
  const tmp = hiddenSibling(target, "partial");
  const release = trackTemporary(tmp);
  let fh: FileHandle | undefined;
  try {
    fh = await mapIoErrors(target, "creating", () =>
      open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode),
    );
    const result = await write(fh);
    await fh.sync();
    await testPause("file");
    await fh.close();
    fh = undefined;
    if (replace) {
      await rename(tmp, target);
    } else {
      await link(tmp, target); // fails with EEXIST instead of replacing
      await rm(tmp, { force: true });
    }
    return result;
  } catch (err) {
    await fh?.close().catch(() => {});
    await rm(tmp, { force: true }).catch(() => {});
    throw ioError(err, target, "writing");
  } finally {
    release();
  }
}

/** Writes all of `data` at `position`. */
export async function writeAll(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

/** Reads exactly `buf.length` bytes at `position`. @throws ERR_CT_FORMAT when the file ends early */
export async function readAll(fh: FileHandle, buf: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) throw new CryptoTensorsError("ERR_CT_FORMAT", "file is truncated");
    done += bytesRead;
  }
}
