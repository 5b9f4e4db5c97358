// The worked example of docs/format.md §9, built with our writer: the same header text (binary values
// aside) and the same length, N = 1040 with 6 spaces of padding.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULT_POLICY, type TensorCryptoEntry } from "../src/container/reserved.js";
import { placeholderHeader } from "../src/container/writer.js";
import { layoutTensors } from "../src/format/serialize.js";
import { REPO_ROOT } from "./helpers.js";

describe("docs/format.md §9", () => {
  it("the example header: text and N = 1040 (6 spaces of padding)", () => {
    const tensors = layoutTensors([
      { name: "weight", dtype: "F32", shape: [2, 3] },
      { name: "bias", dtype: "F32", shape: [3] },
    ]);
    const z = (n: number) => new Uint8Array(n);
    const entry = (): TensorCryptoEntry => ({
      scheme: "chunked",
      wrapped: { wrappedKey: z(32), keyIv: z(12), keyTag: z(16) },
      baseIv: z(12),
      tags: z(16),
    });
    const header = placeholderHeader({
      userMetadata: new Map([["format", "pt"]]),
      layout: {
        version: "2",
        chunkBytes: 2097152,
        enc: { kty: "oct", alg: "aes256gcm", kid: "test-enc-key" },
        sign: { kty: "okp", alg: "ed25519", kid: "test-sign-key" },
        alg: "aes256gcm",
      },
      encryption: new Map([
        ["bias", entry()],
        ["weight", entry()],
      ]),
      policy: DEFAULT_POLICY,
      digests: undefined,
      tensors,
    });
    const n = Number(new DataView(header.buffer, header.byteOffset, 8).getBigUint64(0, true));
    const text = new TextDecoder().decode(header.subarray(8));
    expect(n).toBe(1040);
    expect(text.length - text.trimEnd().length).toBe(6);

    // The doc's text with its elisions (`…`) matches ours with the binary values elided the same way.
    const doc = readFileSync(join(REPO_ROOT, "docs", "format.md"), "utf8");
    const section = doc.slice(doc.indexOf("## 9. Example"), doc.indexOf("## 10."));
    const shown = /```(?:text)?\n(.*)\n```/.exec(section)![1]!;
    const elided = text
      .trimEnd()
      .replace(/(\\"(?:wrapped_key|key_iv|key_tag|base_iv|tags)\\":\\")[A-Za-z0-9+/=]+/g, "$1…")
      .replace(/("__signature__":")[A-Za-z0-9+/=]+/, "$1…")
      .replace(/(\\"weight\\":)\{[^}]*\}/, "$1{…}");
    expect(elided).toBe(shown);
  });
});
