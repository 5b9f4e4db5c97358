// The one mapping from operating-system errors (errno codes) to ERR_CT_IO with the path and a
// remedy. Every writer passes its failures through it, so that a full disk or a name clash is
// reported as what it is (exit 8), never as an "unexpected error" with a stack trace.

import { CryptoTensorsError } from "../errors.js";

/** What was being done to the path: completes "… writing X", "… creating X". */
export type IoAction = "reading" | "writing" | "creating" | "replacing" | "removing";

const VERB: Record<IoAction, string> = { reading: "read", writing: "write", creating: "create", replacing: "replace", removing: "remove" };

function remedyFor(code: string, action: IoAction, path: string): string {
  switch (code) {
    case "ENOSPC":
      return `no space left on device ${action} ${path}: free space or choose another output folder`;
    case "EDQUOT":
      return `disk quota exceeded ${action} ${path}: free space or choose another output folder`;
    case "EFBIG":
      return `file too large ${action} ${path}: choose an output folder on a file system that allows large files`;
    case "EROFS":
      return `read-only file system ${action} ${path}: choose another output folder`;
    case "EACCES":
    case "EPERM":
      return `permission denied ${action} ${path}: choose a location you are allowed to ${action === "reading" ? "read" : "write to"}`;
    case "EEXIST":
      return `${path} already exists: choose another output or pass --force`;
    case "ENOENT":
      return `${path}: no such file or directory`;
    case "ENOTDIR":
      return `${path}: a part of the path is not a directory`;
    case "EISDIR":
      return `${path} is a directory`;
    case "ENOTEMPTY":
      return `${path} is a folder that is not empty: choose another output or pass --force`;
    case "ELOOP":
      return `${path} is a symbolic link (or a loop of them), which is not followed here: remove it or choose another path`;
    case "ENAMETOOLONG":
      return `the path ${path} is too long`;
    case "EMFILE":
    case "ENFILE":
      return `too many open files ${action} ${path}: raise the limit (ulimit -n) or close other programs`;
    case "EXDEV":
      return `${path} is on another file system than its temporary: choose another output folder`;
    case "EIO":
      return `input/output error ${action} ${path}: the disk or file system reported a failure`;
    default:
      return `cannot ${VERB[action]} ${path} (${code})`;
  }
}

function errnoCode(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === "string" && /^E[A-Z0-9]+$/.test(code) ? code : undefined;
}

/**
 * An ERR_CT_IO naming `path` and a remedy for an errno error (anything with an `E…` code);
 * any other error (already typed, a TypeError, a bug) is returned unchanged.
 */
export function ioError(err: unknown, path: string, action: IoAction): unknown {
  if (err instanceof CryptoTensorsError) return err;
  const code = errnoCode(err);
  if (!code) return err;
  return new CryptoTensorsError("ERR_CT_IO", remedyFor(code, action, path), { cause: err });
}

/** Runs `op`, rethrowing its errno errors through {@link ioError}. */
export async function mapIoErrors<T>(path: string, action: IoAction, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    throw ioError(err, path, action);
  }
}
