// ctensors keygen --out DIR [--alg ALG] [--kid ID] [--jwk-style reference|jose] [--force]

import { randomBytes } from "node:crypto";
import { mkdir, writeFile, access } from "node:fs/promises";
import { join } from "node:path";
import { aeadKeyBytes, parseAeadAlgorithm } from "../../crypto/aead.js";
import { ed25519PublicKey } from "../../crypto/signature.js";
import { publicKeyOf, toJwk, type EncryptionKey, type JwkStyle, type SigningKey } from "../../keys/jwk.js";
import type { Command } from "../command.js";
import { usageError } from "../../errors.js";

export const keygen: Command = {
  summary: "generate a master key and an Ed25519 signing key pair",
  usage: "ctensors keygen --out DIR [--alg aes256gcm|aes128gcm|chacha20poly1305] [--kid ID] [--jwk-style reference|jose] [--force]",
  options: {
    out: { type: "string" },
    alg: { type: "string", default: "aes256gcm" },
    kid: { type: "string" },
    "jwk-style": { type: "string", default: "reference" },
    force: { type: "boolean", default: false },
  },
  async run({ values, io }) {
    const out = values.out as string | undefined;
    if (!out) throw usageError("--out DIR is required");
    const alg = parseAeadAlgorithm(values.alg as string);
    if (!alg) throw usageError(`--alg must be aes256gcm, aes128gcm or chacha20poly1305, got ${values.alg}`);
    const style = values["jwk-style"] as JwkStyle;
    if (style !== "reference" && style !== "jose") throw usageError("--jwk-style must be reference or jose");
    const kid = (values.kid as string | undefined) ?? `ct-${randomBytes(4).toString("hex")}`;
    const files = ["enc.jwk", "sign.jwk", "sign.pub.jwk"].map((f) => join(out, f));
    if (!values.force) {
      for (const f of files) {
        const exists = await access(f).then(() => true, () => false);
        if (exists) throw usageError(`${f} already exists: keys are never overwritten without --force`);
      }
    }
    await mkdir(out, { recursive: true, mode: 0o700 });
    const enc: EncryptionKey = { kind: "enc", alg, k: new Uint8Array(randomBytes(aeadKeyBytes(alg))), kid };
    const seed = new Uint8Array(randomBytes(32));
    const sign: SigningKey = { kind: "sign", x: ed25519PublicKey(seed), d: seed, kid };
    const write = (path: string, jwk: object) => writeFile(path, `${JSON.stringify(jwk, null, 2)}\n`, { mode: 0o600, flag: values.force ? "w" : "wx" });
    await write(files[0]!, toJwk(enc, style));
    await write(files[1]!, toJwk(sign, style));
    await write(files[2]!, toJwk(publicKeyOf(sign), style, false));
    enc.k.fill(0);
    seed.fill(0);
    io.out(`wrote ${files.join(", ")} (kid ${kid}, ${alg}, ${style} JWK spelling)`);
    return 0;
  },
};
