// The files of a release and their digests. The listing follows the OMS "files" serialization (every
// regular file, symlinks to files followed, paths under the ignore list left out), so that ctensors
// and an OMS verifier agree on what belongs to the model.

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, readdir, stat } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import { CryptoTensorsError } from "../errors.js";
import { HEADER_PREFIX_BYTES, parseHeaderPrefix } from "../format/header.js";
import { readAll } from "../io/files.js";

function ioError(path: string, err: unknown): CryptoTensorsError {
  return new CryptoTensorsError("ERR_CT_IO", `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err });
}

/** True when `rel` is one of `ignore` or lies under one (OMS's Path.is_relative_to). */
export function isIgnored(rel: string, ignore: readonly string[]): boolean {
  return ignore.some((p) => rel === p || rel.startsWith(`${p}/`));
}

/** Every file of the folder outside `ignore`, as sorted posix paths relative to `root`. */
export async function listReleaseFiles(root: string, ignore: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      throw ioError(dir, err);
    }
    for (const entry of entries) {
      const full = join(dir, entry.name);
      const rel = relative(root, full).split(sep).join("/");
      if (isIgnored(rel, ignore)) continue;
      let kind: "dir" | "file" | null = entry.isDirectory() ? "dir" : entry.isFile() ? "file" : null;
      if (entry.isSymbolicLink())
        kind = await stat(full).then(
          (s) => (s.isDirectory() ? "dir" : s.isFile() ? "file" : null),
          () => null,
        );
      if (kind === "dir") await walk(full);
      else if (kind === "file") out.push(rel);
    }
  };
  await walk(root);
  return out.sort();
}

/** sha256 (hex) of a whole file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 4 << 20 })) h.update(chunk as Buffer);
  } catch (err) {
    throw ioError(path, err);
  }
  return h.digest("hex");
}

/**
 * sha256 (hex) of a safetensors file's header as stored: the 8-byte length prefix and the N header
 * bytes (padding and `__signature__` included). Reads only the header. @throws ERR_CT_FORMAT, ERR_CT_IO
 */
export async function headerDigest(path: string): Promise<string> {
  let fh;
  try {
    fh = await open(path, "r");
  } catch (err) {
    throw ioError(path, err);
  }
  try {
    const { size } = await fh.stat();
    if (size < HEADER_PREFIX_BYTES)
      throw new CryptoTensorsError("ERR_CT_FORMAT", `${path}: header too small: the file is shorter than 8 bytes`);
    const prefix = new Uint8Array(HEADER_PREFIX_BYTES);
    await readAll(fh, prefix, 0);
    const n = parseHeaderPrefix(prefix);
    if (HEADER_PREFIX_BYTES + n > size)
      throw new CryptoTensorsError("ERR_CT_FORMAT", `${path}: invalid header length ${n}: the file has only ${size} bytes`);
    const header = new Uint8Array(n);
    await readAll(fh, header, HEADER_PREFIX_BYTES);
    return createHash("sha256").update(prefix).update(header).digest("hex");
  } finally {
    await fh.close();
  }
}
