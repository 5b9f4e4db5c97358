// Unit tests for keys: JWK parsing/serialisation in both spellings (src/keys/jwk.ts), key sources
// incl. a real HTTPS key service (src/keys/sources.ts), master-key resolution (src/keys/keyring.ts) and
// the signer trust store (src/keys/trust.ts). Spec: docs/format.md §6, §4.

import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KeyRef } from "../src/container/reserved.js";
import { ed25519PublicKey, ed25519Sign } from "../src/crypto/signature.js";
import {
  parseJwk,
  parseJwkOrSet,
  parseJwkText,
  publicKeyOf,
  toJwk,
  zeroKey,
  type EncryptionKey,
  type Key,
  type SigningKey,
} from "../src/keys/jwk.js";
import { resolveEncryptionKey } from "../src/keys/keyring.js";
import { KEY_TOKEN_ENV, KEYS_ENV, loadAllKeys, loadKeys } from "../src/keys/sources.js";
import { TrustStore } from "../src/keys/trust.js";
import { expectCode, newEncryptionKey, newSigningKey, REPO_ROOT, rejection, tempDir, thrown } from "./helpers.js";

const execFileAsync = promisify(execFile);
const hex = (s: string) => new Uint8Array(Buffer.from(s, "hex"));
const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");
const b64url = (b: Uint8Array) => Buffer.from(b).toString("base64url");
const bytesOf = (n: number, start = 1) => new Uint8Array(n).map((_, i) => (start + i) & 0xff);

const invalid = (value: unknown, message: string | RegExp) =>
  expectCode(
    thrown(() => parseJwk(value)),
    "ERR_CT_KEY_INVALID",
    message,
  );

// RFC 8037 Appendix A.1 (the Ed25519 key of RFC 8032 §7.1 TEST 1) in JOSE spelling.
const RFC8037_JWK = {
  kty: "OKP",
  crv: "Ed25519",
  d: "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
  x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
};
const TEST1_SEED = hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
const TEST1_PUBLIC = hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");

// ------------------------------------------------------------------------------------------------

describe("parseJwk: the reference spelling (§6.1)", () => {
  it("oct master key with std base64, kid and jku", () => {
    const k = bytesOf(32);
    const key = parseJwk({
      kty: "oct",
      alg: "aes256gcm",
      k: b64(k),
      kid: "enc-1",
      jku: "file:///keys/enc.jwk",
      use: "enc",
      key_ops: ["x"],
    });
    expect(key).toEqual({ kind: "enc", alg: "aes256gcm", k, kid: "enc-1", jku: "file:///keys/enc.jwk" });
  });

  it("all three algorithms with their key sizes, including lenient spellings", () => {
    const cases: [string, number, string][] = [
      ["aes256gcm", 32, "aes256gcm"],
      ["AES-256-GCM", 32, "aes256gcm"],
      ["aes-256-gcm", 32, "aes256gcm"],
      ["aes128gcm", 16, "aes128gcm"],
      ["AES-128-GCM", 16, "aes128gcm"],
      ["chacha20poly1305", 32, "chacha20poly1305"],
      ["ChaCha20-Poly1305", 32, "chacha20poly1305"],
    ];
    for (const [alg, n, canonical] of cases) {
      const key = parseJwk({ kty: "oct", alg, k: b64(bytesOf(n)) });
      expect(key.kind === "enc" && key.alg, alg).toBe(canonical);
      expect(key.kind === "enc" && key.k.length).toBe(n);
      expect(key.kid).toBeUndefined();
    }
  });

  it("okp signing key: x and d (std base64), alg ed25519 in any case", () => {
    for (const alg of ["ed25519", "ED25519", "Ed25519", undefined]) {
      const key = parseJwk({ kty: "okp", alg, x: b64(TEST1_PUBLIC), d: b64(TEST1_SEED), kid: "s" });
      expect(key).toEqual({ kind: "sign", x: TEST1_PUBLIC, d: TEST1_SEED, kid: "s", jku: undefined });
    }
  });

  it("okp with only d derives x; with only x it is a public key", () => {
    const fromSeed = parseJwk({ kty: "okp", alg: "ed25519", d: b64(TEST1_SEED) }) as SigningKey;
    expect(Buffer.from(fromSeed.x).toString("hex")).toBe(Buffer.from(TEST1_PUBLIC).toString("hex"));
    const pub = parseJwk({ kty: "okp", alg: "ed25519", x: b64(TEST1_PUBLIC) }) as SigningKey;
    expect(pub.d).toBeUndefined();
    expect(pub.x).toEqual(TEST1_PUBLIC);
  });
});

describe("parseJwk: JOSE spelling (RFC 7517 / 8037)", () => {
  it("RFC 8037 A.1 Ed25519 private key", () => {
    const key = parseJwk({ ...RFC8037_JWK, alg: "EdDSA", kid: "rfc" }) as SigningKey;
    expect(key.kind).toBe("sign");
    expect(key.x).toEqual(TEST1_PUBLIC);
    expect(key.d).toEqual(TEST1_SEED);
    expect(key.kid).toBe("rfc");
    expect(parseJwk({ kty: "OKP", crv: "Ed25519", x: RFC8037_JWK.x })).toEqual({
      kind: "sign",
      x: TEST1_PUBLIC,
      d: undefined,
      kid: undefined,
      jku: undefined,
    });
  });

  it("oct keys with base64url values and A256GCM / A128GCM / C20P", () => {
    // Bytes chosen so base64 and base64url differ (+ / vs - _).
    const k32 = new Uint8Array(32).fill(0xfb);
    const k16 = new Uint8Array(16).fill(0xff);
    expect(b64url(k32)).toMatch(/[-_]/);
    expect(parseJwk({ kty: "oct", alg: "A256GCM", k: b64url(k32) })).toMatchObject({ kind: "enc", alg: "aes256gcm", k: k32 });
    expect(parseJwk({ kty: "oct", alg: "A128GCM", k: b64url(k16) })).toMatchObject({ kind: "enc", alg: "aes128gcm", k: k16 });
    expect(parseJwk({ kty: "oct", alg: "C20P", k: b64url(k32) })).toMatchObject({ kind: "enc", alg: "chacha20poly1305", k: k32 });
  });

  it("JWK sets and JSON text", () => {
    const set = {
      keys: [
        { kty: "oct", alg: "aes128gcm", k: b64(bytesOf(16)), kid: "a" },
        { ...RFC8037_JWK, kid: "b" },
      ],
    };
    expect(parseJwkOrSet(set).map((k) => [k.kind, k.kid])).toEqual([
      ["enc", "a"],
      ["sign", "b"],
    ]);
    expect(parseJwkText(JSON.stringify(set)).map((k) => k.kid)).toEqual(["a", "b"]);
    expect(parseJwkText(JSON.stringify(set.keys[0])).map((k) => k.kid)).toEqual(["a"]);
    expect(parseJwkOrSet({ keys: [] })).toEqual([]);
  });
});

describe("parseJwk: errors are ERR_CT_KEY_INVALID", () => {
  it("wrong key length for the algorithm", () => {
    invalid({ kty: "oct", alg: "aes256gcm", k: b64(bytesOf(16)) }, /aes256gcm needs a 32-byte key, "k" has 16/);
    invalid({ kty: "oct", alg: "aes128gcm", k: b64(bytesOf(32)) }, /aes128gcm needs a 16-byte key, "k" has 32/);
    invalid({ kty: "oct", alg: "C20P", k: b64url(bytesOf(31)) }, /needs a 32-byte key/);
    invalid({ kty: "okp", alg: "ed25519", d: b64(bytesOf(31)) }, /"d" must be a 32-byte Ed25519 seed/);
    invalid({ kty: "okp", alg: "ed25519", x: b64(bytesOf(33)) }, /"x" must be a 32-byte Ed25519 public key/);
  });

  it("missing or unsupported alg", () => {
    invalid({ kty: "oct", k: b64(bytesOf(32)) }, /an encryption key needs "alg"/);
    invalid({ kty: "oct", alg: "", k: b64(bytesOf(32)) }, /needs "alg"/);
    invalid({ kty: "oct", alg: "A192GCM", k: b64(bytesOf(24)) }, /unsupported "alg" for an encryption key \(expected aes256gcm/);
    invalid({ kty: "oct", alg: "dir", k: b64(bytesOf(32)) }, /unsupported "alg" for an encryption key/);
    invalid({ kty: "okp", alg: "RS256", x: b64(TEST1_PUBLIC) }, /unsupported "alg" for a signing key \(expected ed25519 or EdDSA\)$/);
    invalid({ kty: "okp", crv: "X25519", x: b64(TEST1_PUBLIC) }, /unsupported "crv" \(only Ed25519\)$/);
  });

  it("x not matching d", () => {
    const other = ed25519PublicKey(bytesOf(32));
    invalid({ kty: "okp", alg: "ed25519", x: b64(other), d: b64(TEST1_SEED) }, /"x" does not match "d"/);
    invalid({ ...RFC8037_JWK, x: b64url(other) }, /"x" does not match "d"/);
  });

  it("unknown or missing kty", () => {
    invalid({ kty: "RSA", n: "AQAB", e: "AQAB" }, /unsupported "kty" \(expected "oct" or "okp"\/"OKP"\)$/);
    invalid({ kty: "EC", crv: "P-256" }, /unsupported "kty"/);
    invalid({ kty: "Oct", alg: "aes256gcm", k: b64(bytesOf(32)) }, /unsupported "kty"/);
    invalid({ alg: "aes256gcm", k: b64(bytesOf(32)) }, /missing "kty"/);
  });

  it("missing or malformed key material and fields", () => {
    invalid({ kty: "oct", alg: "aes256gcm" }, /"k" must be a base64 string/);
    invalid({ kty: "oct", alg: "aes256gcm", k: 42 }, /"k" must be a base64 string/);
    invalid({ kty: "oct", alg: "aes256gcm", k: "not base64!" }, /"k" is not valid base64 or base64url/);
    invalid({ kty: "oct", alg: "aes256gcm", k: b64(bytesOf(32)) + "\n" }, /not valid base64/);
    invalid({ kty: "okp", alg: "ed25519" }, /needs "x" \(public\) or "d" \(private\)/);
    invalid({ kty: "oct", alg: "aes256gcm", k: b64(bytesOf(32)), kid: 7 }, /"kid" must be a string/);
    invalid(null, /not a JSON object/);
    invalid([{ kty: "oct" }], /not a JSON object/);
    invalid("oct", /not a JSON object/);
  });

  it("errors in a set name the key; bad JSON text is reported as such", () => {
    const set = {
      keys: [
        { kty: "oct", alg: "aes256gcm", k: b64(bytesOf(32)) },
        { kty: "oct", alg: "aes256gcm", k: b64(bytesOf(8)) },
      ],
    };
    expectCode(
      thrown(() => parseJwkOrSet(set, "keys.json")),
      "ERR_CT_KEY_INVALID",
      /^keys\.json keys\[1\]: /,
    );
    expectCode(
      thrown(() => parseJwkText("{not json", "inline")),
      "ERR_CT_KEY_INVALID",
      /inline: not valid JSON/,
    );
  });
});

describe("toJwk", () => {
  it("reference spelling round trip (enc and sign), std base64 with padding", () => {
    const enc: EncryptionKey = { kind: "enc", alg: "aes128gcm", k: new Uint8Array(16).fill(0xfb), kid: "e", jku: "file:///k.jwk" };
    const jwk = toJwk(enc);
    expect(jwk).toEqual({ kty: "oct", alg: "aes128gcm", k: "+/v7+/v7+/v7+/v7+/v7+w==", kid: "e", jku: "file:///k.jwk" });
    expect(parseJwk(jwk)).toEqual(enc);
    const sign: SigningKey = { kind: "sign", x: TEST1_PUBLIC, d: TEST1_SEED, kid: "s" };
    const sjwk = toJwk(sign, "reference");
    expect(sjwk).toEqual({ kty: "okp", alg: "ed25519", x: b64(TEST1_PUBLIC), d: b64(TEST1_SEED), kid: "s" });
    expect(parseJwk(sjwk)).toEqual({ ...sign, jku: undefined });
  });

  it("JOSE spelling reproduces RFC 8037 A.1 and round-trips", () => {
    const sign: SigningKey = { kind: "sign", x: TEST1_PUBLIC, d: TEST1_SEED };
    expect(toJwk(sign, "jose")).toEqual({ ...RFC8037_JWK, alg: "EdDSA" });
    expect(parseJwk(toJwk(sign, "jose"))).toEqual({ ...sign, kid: undefined, jku: undefined });
    for (const alg of ["aes256gcm", "aes128gcm", "chacha20poly1305"] as const) {
      const enc = newEncryptionKey(alg, "j");
      const jwk = toJwk(enc, "jose");
      expect(jwk.alg).toBe({ aes256gcm: "A256GCM", aes128gcm: "A128GCM", chacha20poly1305: "C20P" }[alg]);
      expect(jwk.k).toBe(b64url(enc.k));
      expect(jwk.k).not.toMatch(/=/);
      expect(parseJwk(jwk)).toEqual({ ...enc, jku: undefined });
    }
  });

  it("a public export has no k and no d", () => {
    for (const style of ["reference", "jose"] as const) {
      const enc = toJwk(newEncryptionKey(), style, false);
      expect(enc).not.toHaveProperty("k");
      const sign = toJwk(newSigningKey(), style, false);
      expect(sign).not.toHaveProperty("d");
      expect(sign).toHaveProperty("x");
      expect(JSON.stringify(sign)).not.toMatch(/"d"/);
    }
    const s = newSigningKey("p");
    const pub = publicKeyOf(s);
    expect(pub).toEqual({ kind: "sign", x: s.x, kid: "p", jku: undefined });
    expect(pub.d).toBeUndefined();
    expect(toJwk(pub)).not.toHaveProperty("d");
  });

  it("zeroKey wipes secret bytes", () => {
    const enc = newEncryptionKey();
    zeroKey(enc);
    expect(enc.k.every((b) => b === 0)).toBe(true);
    const sign = newSigningKey();
    zeroKey(sign);
    expect(sign.d!.every((b) => b === 0)).toBe(true);
    expect(sign.x.some((b) => b !== 0)).toBe(true);
  });
});

// ------------------------------------------------------------------------------------------------

const encJwk = (kid: string, alg = "aes256gcm", n = 32) => ({ kty: "oct", alg, k: b64(randomBytes(n)), kid });
const kids = (keys: Key[]) => keys.map((k) => k.kid);

describe("loadKeys: local sources", () => {
  const dir = tempDir();
  const setPath = join(dir, "keys.json");
  const set = { keys: [encJwk("e1"), { ...RFC8037_JWK, kid: "s1" }] };
  writeFileSync(setPath, JSON.stringify(set));

  it("a file path", async () => {
    expect(kids(await loadKeys(setPath))).toEqual(["e1", "s1"]);
  });

  it("a file:// URL (also with spaces and non-ASCII in the path)", async () => {
    expect(kids(await loadKeys(pathToFileURL(setPath).href))).toEqual(["e1", "s1"]);
    const odd = join(dir, "my keys é.jwk");
    writeFileSync(odd, JSON.stringify(encJwk("odd")));
    const url = pathToFileURL(odd).href;
    expect(url).toMatch(/%20/);
    expect(kids(await loadKeys(url))).toEqual(["odd"]);
  });

  it("inline JSON text and a JSON object", async () => {
    expect(kids(await loadKeys(`  ${JSON.stringify(encJwk("inline"))}\n`))).toEqual(["inline"]);
    expect(kids(await loadKeys(set))).toEqual(["e1", "s1"]);
    expectCode(await rejection(loadKeys(`{"kty":`)), "ERR_CT_KEY_INVALID", /key source \(inline JWK\): not valid JSON/);
  });

  it("env, env: and env:NAME read options.env (not process.env)", async () => {
    const env = { [KEYS_ENV]: JSON.stringify({ keys: [encJwk("from-default")] }), MY_KEYS: JSON.stringify(encJwk("from-named")) };
    expect(KEYS_ENV).toBe("CRYPTOTENSOR_KEYS");
    expect(process.env.MY_KEYS).toBeUndefined();
    expect(kids(await loadKeys("env", { env }))).toEqual(["from-default"]);
    expect(kids(await loadKeys("env:", { env }))).toEqual(["from-default"]);
    expect(kids(await loadKeys("env:MY_KEYS", { env }))).toEqual(["from-named"]);
    expectCode(await rejection(loadKeys("env:NOPE", { env })), "ERR_CT_KEY_NOT_FOUND", /environment variable NOPE is not set/);
    expectCode(await rejection(loadKeys("env", { env: {} })), "ERR_CT_KEY_NOT_FOUND", /environment variable CRYPTOTENSOR_KEYS is not set/);
    expectCode(await rejection(loadKeys("env:BAD", { env: { BAD: "[" } })), "ERR_CT_KEY_INVALID", /\$BAD: not valid JSON/);
  });

  it("a missing file is ERR_CT_KEY_NOT_FOUND; a malformed one ERR_CT_KEY_INVALID", async () => {
    const missing = join(dir, "nope.jwk");
    expectCode(await rejection(loadKeys(missing)), "ERR_CT_KEY_NOT_FOUND", /^key source: cannot read the key file \(ENOENT\)/);
    expectCode(await rejection(loadKeys(pathToFileURL(missing).href)), "ERR_CT_KEY_NOT_FOUND", /ENOENT/);
    const bad = join(dir, "bad.jwk");
    writeFileSync(bad, JSON.stringify({ kty: "oct", alg: "aes256gcm", k: b64(bytesOf(5)) }));
    expectCode(await rejection(loadKeys(bad)), "ERR_CT_KEY_INVALID", /bad\.jwk: aes256gcm needs a 32-byte key/);
  });

  it("loadAllKeys concatenates in order", async () => {
    const keys = await loadAllKeys([setPath, JSON.stringify(encJwk("x")), "env:K"], { env: { K: JSON.stringify(encJwk("y")) } });
    expect(kids(keys)).toEqual(["e1", "s1", "x", "y"]);
  });
});

describe("loadKeys: HTTP(S) key services", () => {
  it("plain http to a non-loopback host is refused before any request", async () => {
    let calls = 0;
    const spy = (async () => {
      calls++;
      return new Response("{}");
    }) as typeof fetch;
    for (const url of [
      "http://keys.example.com/keys.json",
      "HTTP://10.0.0.1/k",
      "http://127.0.0.1.nip.io/k",
      "http://localhost.example/k",
    ]) {
      expectCode(
        await rejection(loadKeys(url, { fetch: spy, token: "t" })),
        "ERR_CT_KEY_NOT_FOUND",
        /refusing to fetch keys over plain HTTP/,
      );
    }
    expect(calls).toBe(0);
  });

  it("sends the bearer token and refuses redirects (checked with an injected fetch)", async () => {
    const seen: { url: string; init: RequestInit | undefined }[] = [];
    const spy = (async (url: string | URL | Request, init?: RequestInit) => {
      seen.push({ url: String(url), init });
      return new Response(JSON.stringify({ keys: [encJwk("remote")] }), { status: 200 });
    }) as typeof fetch;
    expect(kids(await loadKeys("https://kms.example/keys.json", { fetch: spy, token: "tok" }))).toEqual(["remote"]);
    expect(seen[0]!.url).toBe("https://kms.example/keys.json");
    expect((seen[0]!.init!.headers as Record<string, string>).authorization).toBe("Bearer tok");
    expect(seen[0]!.init!.redirect).toBe("error");
    // Token from the environment when not given; none at all → no authorization header.
    await loadKeys("https://kms.example/keys.json", { fetch: spy, env: { [KEY_TOKEN_ENV]: "from-env" } });
    expect((seen[1]!.init!.headers as Record<string, string>).authorization).toBe("Bearer from-env");
    await loadKeys("https://kms.example/keys.json", { fetch: spy, env: {} });
    expect((seen[2]!.init!.headers as Record<string, string>).authorization).toBeUndefined();
  });

  describe("against a real loopback http server", () => {
    let server: Server;
    let base = "";
    const auth: (string | undefined)[] = [];
    beforeAll(async () => {
      server = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
        auth.push(req.headers.authorization);
        if (req.headers.authorization !== "Bearer s3cret") {
          res.writeHead(401).end("unauthorized");
          return;
        }
        res.writeHead(200, { "content-type": "application/jwk-set+json" }).end(JSON.stringify({ keys: [encJwk("loop")] }));
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it("loopback http is allowed; the token is sent; 401 is ERR_CT_KEY_NOT_FOUND", async () => {
      expect(kids(await loadKeys(`${base}/keys.json`, { token: "s3cret", env: {} }))).toEqual(["loop"]);
      expect(auth.at(-1)).toBe("Bearer s3cret");
      expectCode(
        await rejection(loadKeys(`${base}/keys.json`, { token: "wrong", env: {} })),
        "ERR_CT_KEY_NOT_FOUND",
        /answered HTTP 401 \(the bearer token was refused\)$/,
      );
      expectCode(await rejection(loadKeys(`${base}/keys.json`, { env: {} })), "ERR_CT_KEY_NOT_FOUND", /HTTP 401/);
      expect(auth.at(-1)).toBeUndefined();
    });

    it("an unreachable service is ERR_CT_KEY_NOT_FOUND", async () => {
      const probe = createHttpServer();
      await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
      const port = (probe.address() as AddressInfo).port;
      await new Promise<void>((resolve) => probe.close(() => resolve()));
      expectCode(await rejection(loadKeys(`http://127.0.0.1:${port}/k`, { env: {} })), "ERR_CT_KEY_NOT_FOUND", /cannot reach key service/);
    });
  });

  describe("against a real HTTPS server with a self-signed certificate (child node process)", () => {
    const dir = tempDir("ctensors-https-");
    const certPath = join(dir, "cert.pem");
    const keyPath = join(dir, "key.pem");
    const dist = join(REPO_ROOT, "plugin", "dist", "index.js");
    let server: ReturnType<typeof createHttpsServer>;
    let origin = "";

    beforeAll(async () => {
      expect(existsSync(dist), `${dist} is missing: run npm run build first`).toBe(true);
      execFileSync(
        "openssl",
        [
          "req",
          "-x509",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:prime256v1",
          "-nodes",
          "-keyout",
          keyPath,
          "-out",
          certPath,
          "-days",
          "1",
          "-subj",
          "/CN=127.0.0.1",
          "-addext",
          "subjectAltName=IP:127.0.0.1,DNS:localhost",
          "-addext",
          "basicConstraints=critical,CA:TRUE",
        ],
        { stdio: "pipe" },
      );
      server = createHttpsServer({ key: readFileSync(keyPath), cert: readFileSync(certPath) }, (req, res) => {
        if (req.url === "/redirect") {
          res.writeHead(302, { location: "/keys.json" }).end();
          return;
        }
        if (req.headers.authorization !== "Bearer good-token") {
          res.writeHead(401, { "www-authenticate": "Bearer" }).end("no");
          return;
        }
        if (req.url === "/garbage") {
          res.writeHead(200).end("<html>not keys</html>");
          return;
        }
        res
          .writeHead(200, { "content-type": "application/jwk-set+json" })
          .end(JSON.stringify({ keys: [encJwk("https-enc"), { ...RFC8037_JWK, kid: "https-sign" }] }));
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    /** Runs loadKeys from the built package in a child process; returns its kids or its error. */
    async function childLoad(
      url: string,
      opts: { token?: string; trustCert?: boolean; envToken?: string } = {},
    ): Promise<{ kids?: string[]; code?: string; message?: string }> {
      const script = `
        const { loadKeys } = await import(${JSON.stringify(pathToFileURL(dist).href)});
        const opts = JSON.parse(process.argv[2]);
        try {
          const keys = await loadKeys(process.argv[1], opts);
          console.log(JSON.stringify({ kids: keys.map((k) => k.kid) }));
        } catch (e) {
          console.log(JSON.stringify({ code: e.code, message: e.message }));
        }`;
      const env: NodeJS.ProcessEnv = { ...process.env };
      delete env[KEY_TOKEN_ENV];
      delete env.NODE_EXTRA_CA_CERTS;
      if (opts.trustCert !== false) env.NODE_EXTRA_CA_CERTS = certPath;
      if (opts.envToken !== undefined) env[KEY_TOKEN_ENV] = opts.envToken;
      const { stdout } = await execFileAsync(
        process.execPath,
        ["--input-type=module", "-e", script, url, JSON.stringify(opts.token ? { token: opts.token } : {})],
        {
          env,
          timeout: 30_000,
        },
      );
      return JSON.parse(stdout.trim().split("\n").at(-1)!) as { kids?: string[]; code?: string; message?: string };
    }

    it("the right bearer token gets the JWK set", async () => {
      expect(await childLoad(`${origin}/keys.json`, { token: "good-token" })).toEqual({ kids: ["https-enc", "https-sign"] });
    });

    it("the token can come from $CTENSORS_KEY_TOKEN", async () => {
      expect(await childLoad(`${origin}/keys.json`, { envToken: "good-token" })).toEqual({ kids: ["https-enc", "https-sign"] });
    });

    it("a wrong or missing token is ERR_CT_KEY_NOT_FOUND mentioning HTTP 401", async () => {
      const wrong = await childLoad(`${origin}/keys.json`, { token: "bad-token" });
      expect(wrong.code).toBe("ERR_CT_KEY_NOT_FOUND");
      expect(wrong.message).toMatch(/answered HTTP 401/);
      expect(wrong.message).not.toMatch(/bad-token/); // the token is never echoed
      const missing = await childLoad(`${origin}/keys.json`);
      expect(missing.code).toBe("ERR_CT_KEY_NOT_FOUND");
      expect(missing.message).toMatch(/HTTP 401/);
    });

    it("redirects are not followed", async () => {
      const r = await childLoad(`${origin}/redirect`, { token: "good-token" });
      expect(r.code).toBe("ERR_CT_KEY_NOT_FOUND");
      expect(r.message).toMatch(/cannot reach key service/);
    });

    it("a response that is not a JWK set is ERR_CT_KEY_INVALID", async () => {
      const r = await childLoad(`${origin}/garbage`, { token: "good-token" });
      expect(r.code).toBe("ERR_CT_KEY_INVALID");
    });

    it("the certificate is verified: without trusting it the service is unreachable", async () => {
      const r = await childLoad(`${origin}/keys.json`, { token: "good-token", trustCert: false });
      expect(r.code).toBe("ERR_CT_KEY_NOT_FOUND");
      expect(r.message).toMatch(/cannot reach key service/);
    });
  });
});

// ------------------------------------------------------------------------------------------------

const ref = (alg: string, kid?: string, jku?: string): KeyRef => ({ kty: "oct", alg, kid, jku });

describe("resolveEncryptionKey (§6.3)", () => {
  const dir = tempDir();

  it("picks the key whose kid matches the header", async () => {
    const a = newEncryptionKey("aes256gcm", "a");
    const b = newEncryptionKey("aes256gcm", "b");
    expect(await resolveEncryptionKey([newSigningKey("b"), a, b], ref("aes256gcm", "b"))).toBe(b);
    expect(await resolveEncryptionKey([a, b], ref("aes256gcm", "a"))).toBe(a);
  });

  it("falls back to the single kid-less key; two kid-less keys are ambiguous", async () => {
    // (newEncryptionKey's kid parameter has a default, so kid-less keys are built explicitly.)
    const anon: EncryptionKey = { ...newEncryptionKey("aes256gcm"), kid: undefined };
    const other = newEncryptionKey("aes256gcm", "other");
    expect(await resolveEncryptionKey([other, anon], ref("aes256gcm", "wanted"))).toBe(anon);
    const anon2: EncryptionKey = { ...newEncryptionKey("aes256gcm"), kid: undefined };
    expectCode(await rejection(resolveEncryptionKey([anon, anon2], ref("aes256gcm", "wanted"))), "ERR_CT_KEY_NOT_FOUND");
    // A header without kid takes the first encryption key supplied.
    expect(await resolveEncryptionKey([newSigningKey(), other, anon], ref("aes256gcm"))).toBe(other);
  });

  it("the key's algorithm must match the header's (lenient spellings match)", async () => {
    const k128 = newEncryptionKey("aes128gcm", "k");
    expectCode(
      await rejection(resolveEncryptionKey([k128], ref("aes256gcm", "k"))),
      "ERR_CT_KEY_INVALID",
      /the master key is aes128gcm but the file was encrypted with "aes256gcm"/,
    );
    expectCode(await rejection(resolveEncryptionKey([k128], ref("nonsense", "k"))), "ERR_CT_KEY_INVALID");
    expect(await resolveEncryptionKey([k128], ref("AES-128-GCM", "k"))).toBe(k128);
    const cc = newEncryptionKey("chacha20poly1305", "c");
    expect(await resolveEncryptionKey([cc], ref("ChaCha20-Poly1305", "c"))).toBe(cc);
  });

  it("no usable key is ERR_CT_KEY_NOT_FOUND, naming the wanted and the supplied kids", async () => {
    expectCode(await rejection(resolveEncryptionKey([], ref("aes256gcm", "x"))), "ERR_CT_KEY_NOT_FOUND", /no encryption key was supplied/);
    expectCode(await rejection(resolveEncryptionKey([newSigningKey("x")], ref("aes256gcm", "x"))), "ERR_CT_KEY_NOT_FOUND", /names kid "x"/);
    expectCode(
      await rejection(
        resolveEncryptionKey([newEncryptionKey("aes256gcm", "y"), newEncryptionKey("aes256gcm", "z")], ref("aes256gcm", "x")),
      ),
      "ERR_CT_KEY_NOT_FOUND",
      /the supplied keys are "y", "z"/,
    );
  });

  it("follows a file:// jku when no supplied key matches (and only then, and only if allowed)", async () => {
    const k = bytesOf(32, 7);
    const path = join(dir, "jku keys.json");
    writeFileSync(
      path,
      JSON.stringify({
        keys: [
          { kty: "okp", alg: "ed25519", x: b64(TEST1_PUBLIC), kid: "j" },
          { kty: "oct", alg: "aes256gcm", k: b64(k), kid: "j" },
        ],
      }),
    );
    const jku = pathToFileURL(path).href;
    const found = await resolveEncryptionKey([], ref("aes256gcm", "j", jku));
    expect(found.k).toEqual(k);
    expect(found.kid).toBe("j");
    // A supplied matching key wins over the jku.
    const supplied = newEncryptionKey("aes256gcm", "j");
    expect(await resolveEncryptionKey([supplied], ref("aes256gcm", "j", jku))).toBe(supplied);
    // Not followed when disabled.
    expectCode(
      await rejection(resolveEncryptionKey([], ref("aes256gcm", "j", jku), { followFileJku: false })),
      "ERR_CT_KEY_NOT_FOUND",
      /at "file:/,
    );
    // A jku file without the kid → not found; a missing jku file → not found.
    expectCode(await rejection(resolveEncryptionKey([], ref("aes256gcm", "other", jku))), "ERR_CT_KEY_NOT_FOUND");
    expectCode(
      await rejection(resolveEncryptionKey([], ref("aes256gcm", "j", pathToFileURL(join(dir, "gone.json")).href))),
      "ERR_CT_KEY_NOT_FOUND",
    );
    // Non-file jku values are never fetched.
    expectCode(await rejection(resolveEncryptionKey([], ref("aes256gcm", "j", "https://evil.example/keys.json"))), "ERR_CT_KEY_NOT_FOUND");
  });
});

// ------------------------------------------------------------------------------------------------

const signer = (kid?: string): KeyRef => ({ kty: "okp", alg: "ed25519", kid });
const msg = new TextEncoder().encode(`{"__metadata__":{"format":"pt"}}`);

describe("TrustStore", () => {
  const alice = newSigningKey("alice");
  const bob = newSigningKey("bob");
  const sig = ed25519Sign(alice.d!, msg);

  it("verifies with a trusted key and returns it (public half only)", () => {
    const store = new TrustStore([bob, alice, newEncryptionKey()]);
    expect(store.size).toBe(2);
    expect(store.keys.every((k) => k.d === undefined)).toBe(true);
    const who = store.verify(msg, sig, signer("alice"));
    expect(who.kid).toBe("alice");
    expect(who.x).toEqual(alice.x);
    // No kid in the header: every trusted key is tried.
    expect(store.verify(msg, sig, signer()).kid).toBe("alice");
  });

  it("a kid-less trusted key is tried for any signer kid", () => {
    const store = new TrustStore([{ kind: "sign", x: alice.x }]);
    expect(store.verify(msg, sig, signer("whatever")).x).toEqual(alice.x);
  });

  it("an untrusted kid is ERR_CT_UNTRUSTED_SIGNER", () => {
    const store = new TrustStore([bob]);
    const err = thrown(() => store.verify(msg, sig, signer("alice")));
    expectCode(err, "ERR_CT_UNTRUSTED_SIGNER", /signed by key "alice", which is not among the trusted keys \("bob"\)/);
  });

  it("a bad signature from a trusted kid is ERR_CT_SIGNATURE_INVALID", () => {
    const store = new TrustStore([alice]);
    const flipped = sig.slice();
    flipped[0]! ^= 1;
    expectCode(
      thrown(() => store.verify(msg, flipped, signer("alice"))),
      "ERR_CT_SIGNATURE_INVALID",
    );
    const tampered = msg.slice();
    tampered[5]! ^= 1;
    expectCode(
      thrown(() => store.verify(tampered, sig, signer("alice"))),
      "ERR_CT_SIGNATURE_INVALID",
    );
    // Signed by bob but claiming to be alice.
    expectCode(
      thrown(() => store.verify(msg, ed25519Sign(bob.d!, msg), signer("alice"))),
      "ERR_CT_SIGNATURE_INVALID",
      /does not verify/,
    );
    expectCode(
      thrown(() => store.verify(msg, sig.subarray(0, 63), signer("alice"))),
      "ERR_CT_SIGNATURE_INVALID",
    );
  });

  it("an empty store is ERR_CT_UNTRUSTED_SIGNER (encryption keys do not count)", () => {
    expectCode(
      thrown(() => new TrustStore([]).verify(msg, sig, signer("alice"))),
      "ERR_CT_UNTRUSTED_SIGNER",
      /no trusted signer key/,
    );
    expectCode(
      thrown(() => new TrustStore([newEncryptionKey()]).verify(msg, sig, signer("alice"))),
      "ERR_CT_UNTRUSTED_SIGNER",
    );
  });

  it("TrustStore.load reads public keys from sources", async () => {
    const dir = tempDir();
    const path = join(dir, "trust.jwk");
    writeFileSync(path, JSON.stringify(toJwk(alice, "jose", false)));
    const store = await TrustStore.load([path, "env:T"], { env: { T: JSON.stringify({ keys: [toJwk(bob, "reference", false)] }) } });
    expect(store.keys.map((k) => k.kid)).toEqual(["alice", "bob"]);
    expect(store.verify(msg, sig, signer("alice")).kid).toBe("alice");
  });
});
