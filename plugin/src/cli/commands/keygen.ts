// ctensors keygen --out DIR [--alg ALG] [--kid ID] [--jwk-style reference|jose] [--force]
// Secrets go only into a folder private to this user (io/private-dir.ts), each file written whole or
// not at all and never through a symbolic link (io/files.ts: a new file linked or renamed into place).

import { randomBytes } from "node:crypto";
import { lstat, rm } from "node:fs/promises";
import { join } from "node:path";
import { aeadKeyBytes, parseAeadAlgorithm } from "../../crypto/aead.js";
import { ed25519PublicKey } from "../../crypto/signature.js";
import { withAtomicFile, writeAll } from "../../io/files.js";
import { ensurePrivateDirectory } from "../../io/private-dir.js";
import { publicKeyOf, toJwk, type EncryptionKey, type SigningKey } from "../../keys/jwk.js";
import { defineCommand } from "../command.js";
import { usageError } from "../../errors.js";
import { withCleanupOnSignals } from "../signals.js";

export const keygen = defineCommand({
  summary: "generate a master key and an Ed25519 signing key pair",
  usage: "ctensors keygen --out DIR [options]",
  description:
    "Writes DIR/enc.jwk (the master key, secret), DIR/sign.jwk (the Ed25519 private key) and DIR/sign.pub.jwk\n" +
    "(the public key, for whoever verifies), mode 0600 in a folder private to you (created mode 0700), all or none.",
  options: {
    out: { type: "string", value: "DIR", description: "the key folder" },
    alg: {
      type: "string",
      value: "ALG",
      default: "aes256gcm",
      description: "the master key's algorithm: aes256gcm, aes128gcm or chacha20poly1305",
    },
    kid: { type: "string", value: "ID", description: "the key id both keys get", defaultText: "a random ct-xxxxxxxx" },
    "jwk-style": {
      type: "string",
      value: "STYLE",
      default: "reference",
      description: "reference (the reference implementation's JWK spelling) or jose (standard JOSE spelling)",
    },
    force: { type: "boolean", default: false, description: "replace existing key files (never through a symbolic link)" },
  },
  examples: ["ctensors keygen --out keys", "ctensors keygen --out keys --alg chacha20poly1305 --kid prod-2025"],
  async run({ values, io }) {
    const out = values.out;
    if (!out) throw usageError("--out DIR is required");
    const alg = parseAeadAlgorithm(values.alg);
    if (!alg) throw usageError(`--alg must be aes256gcm, aes128gcm or chacha20poly1305, got ${values.alg}`);
    const style = values["jwk-style"];
    if (style !== "reference" && style !== "jose") throw usageError("--jwk-style must be reference or jose");
    const force = values.force;
    const kid = values.kid ?? `ct-${randomBytes(4).toString("hex")}`;
    const files = ["enc.jwk", "sign.jwk", "sign.pub.jwk"].map((f) => join(out, f));
    if (!force) {
      for (const f of files) {
        // lstat: a symbolic link (even a dangling one) counts as existing
        if (
          await lstat(f).then(
            () => true,
            () => false,
          )
        )
          throw usageError(`${f} already exists: keys are never overwritten without --force`);
      }
    }
    await ensurePrivateDirectory(out, "--out");
    const enc: EncryptionKey = { kind: "enc", alg, k: new Uint8Array(randomBytes(aeadKeyBytes(alg))), kid };
    const seed = new Uint8Array(randomBytes(32));
    const sign: SigningKey = { kind: "sign", x: ed25519PublicKey(seed), d: seed, kid };
    const written: string[] = [];
    const write = async (path: string, jwk: object) => {
      const bytes = new TextEncoder().encode(`${JSON.stringify(jwk, null, 2)}\n`);
      try {
        await withAtomicFile(path, 0o600, (fh) => writeAll(fh, bytes, 0), { replace: force });
      } finally {
        bytes.fill(0);
      }
      written.push(path);
    };
    try {
      await withCleanupOnSignals(async () => {
        await write(files[0]!, toJwk(enc, style));
        await write(files[1]!, toJwk(sign, style));
        await write(files[2]!, toJwk(publicKeyOf(sign), style, false));
      });
    } catch (err) {
      // all three or none: a lone enc.jwk without its signing pair is only confusing
      for (const f of written) await rm(f, { force: true }).catch(() => {});
      throw err;
    } finally {
      enc.k.fill(0);
      seed.fill(0);
    }
    io.out(`wrote ${files.join(", ")} (kid ${kid}, ${alg}, ${style} JWK spelling)`);
    return 0;
  },
});
