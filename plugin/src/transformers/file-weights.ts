// Node: the weights of a local container file (see container-weights.ts), decrypted from the file by
// its descriptor straight into the buffers transformers.js receives, with the native engine when it is
// built (all tensors of a file in one job on its thread pool), else node:crypto in place. The ciphertext
// is never held in memory as a whole.

import { read as fsRead } from "node:fs";
import { readFile } from "node:fs/promises";
import { promisify } from "node:util";
import { CryptoTensorsError } from "../errors.js";
import { CryptoTensorsReader, readTensorsInto } from "../container/reader.js";
import { engineName } from "../crypto/engine.js";
import { HEADER_PREFIX_BYTES } from "../format/header.js";
import type { ContainerOpenOptions, ContainerWeights } from "./container-weights.js";

const readAsync = promisify(fsRead);

/** The first `bytes` bytes of the open file `fd`. */
async function readPrefix(fd: number, bytes: number): Promise<Uint8Array> {
  const out = new Uint8Array(bytes);
  let done = 0;
  while (done < bytes) {
    const { bytesRead } = await readAsync(fd, out, done, bytes - done, done);
    if (bytesRead === 0) throw new CryptoTensorsError("ERR_CT_FORMAT", "file is truncated");
    done += bytesRead;
  }
  return out;
}

const isMissing = (err: unknown) => {
  const code = ((err as { cause?: NodeJS.ErrnoException }).cause ?? (err as NodeJS.ErrnoException))?.code;
  return code === "ENOENT" || code === "ENOTDIR";
};

/** The container at `path`, opened and verified; undefined when there is no such file. */
export async function fileWeights(path: string, options: ContainerOpenOptions): Promise<ContainerWeights | undefined> {
  let reader: CryptoTensorsReader;
  try {
    reader = await CryptoTensorsReader.open(path, {
      keys: options.keys,
      trust: options.trust,
      requireEncrypted: options.requireEncrypted,
      policyEngine: options.policyEngine,
      followFileJku: false, // as for a container in memory: a model folder does not choose files of this machine
    });
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
  try {
    // The header as the reader read it, from the same open file (what the release binds it by).
    const headerBytes = await readPrefix(reader.fd, HEADER_PREFIX_BYTES + reader.header.headerBytes);
    return {
      signer: reader.signer?.kid ?? null,
      tensorCount: reader.tensors.length,
      metadata: (key) => reader.header.metadata?.get(key),
      headerBytes,
      wholeFileSha256: async () => options.provider.sha256(await readFile(path)),
      byteLength: (name) => {
        const t = reader.header.byName.get(name);
        return t ? t.end - t.begin : undefined;
      },
      async decryptInto(files, placements) {
        for (const [file, buffer] of files) {
          const targets = placements.filter((p) => p.file === file);
          if (engineName() === "native") {
            await readTensorsInto(
              targets.map((t) => ({ reader, name: t.name, offset: t.offset })),
              { kind: "buffer", buffer },
            );
            continue;
          }
          for (const t of targets) {
            const n = reader.info(t.name);
            await reader.readTensorInto(t.name, buffer.subarray(t.offset, t.offset + n.end - n.begin));
          }
        }
      },
      close: () => reader.close(),
    };
  } catch (err) {
    await reader.close();
    throw err;
  }
}
