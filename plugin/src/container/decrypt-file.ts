// Decrypt a CryptoTensors file into a plain safetensors file (same tensor order and user metadata),
// after verifying the signature with a trusted key. The output appears only when every tensor
// authenticated; it is created with mode 0600 because it holds plaintext weights.

import { encodeHeader, serializeHeaderJson } from "../format/serialize.js";
import { withAtomicFile, writeAll } from "../io/files.js";
import { CryptoTensorsReader, type OpenOptions } from "./reader.js";
import { userMetadataForOutput } from "./writer.js";

export interface DecryptOptions extends OpenOptions {
  onProgress?: ((doneBytes: number, totalBytes: number) => void) | undefined;
}

/** @throws everything {@link CryptoTensorsReader.open} and readTensor throw */
export async function decryptFile(input: string, output: string, options: DecryptOptions): Promise<{ tensors: number; bytes: number }> {
  const reader = await CryptoTensorsReader.open(input, options);
  try {
    const md = reader.header.metadata ? userMetadataForOutput(reader.header.metadata) : null;
    const headerBytes = encodeHeader(serializeHeaderJson(md, reader.tensors));
    const total = reader.header.dataBytes;
    let done = 0;
    await withAtomicFile(output, 0o600, async (fh) => {
      await writeAll(fh, headerBytes, 0);
      for await (const [t, data] of reader.readEach()) {
        await writeAll(fh, data, headerBytes.length + t.begin);
        done += data.length;
        options.onProgress?.(done, total);
      }
    });
    return { tensors: reader.tensors.length, bytes: total };
  } finally {
    await reader.close();
  }
}
