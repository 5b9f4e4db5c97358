// Output files appear only when complete: data goes to a hidden temporary file beside the target,
// which is renamed into place on success and removed on any failure (no half-written models).

import { randomBytes } from "node:crypto";
import { open, rename, rm, type FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { CryptoTensorsError } from "../errors.js";

export async function withAtomicFile<T>(target: string, mode: number, write: (fh: FileHandle) => Promise<T>): Promise<T> {
  const tmp = join(dirname(target), `.${basename(target)}.${randomBytes(6).toString("hex")}.partial`);
  let fh: FileHandle;
  try {
    fh = await open(tmp, "wx", mode);
  } catch (err) {
    throw new CryptoTensorsError("ERR_CT_IO", `cannot create ${target}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err });
  }
  try {
    const result = await write(fh);
    await fh.sync();
    await fh.close();
    await rename(tmp, target);
    return result;
  } catch (err) {
    await fh.close().catch(() => {});
    await rm(tmp, { force: true });
    throw err;
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
