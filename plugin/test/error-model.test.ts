// One error model and safe output, through the real CLI (`node plugin/dist/cli/bin.js`, needs
// `npm run build`) and the real reference writer: usage errors exit 2 and programming bugs exit 1;
// library messages name no CLI flag (the CLI adds the hint); no key material is echoed; untrusted
// header strings never reach the terminal as control characters; both engines read a v2 file whose
// chunk_size exceeds 2^31 and refuse such a chunk size for writing up front.

import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { COMMANDS, main } from "../src/cli/main.js";
import { encryptFile } from "../src/container/encrypt-file.js";
import { CryptoTensorsError, usageError } from "../src/errors.js";
import { printable, quote, toJson } from "../src/format/printable.js";
import { parseJwk, publicKeyOf, toJwk } from "../src/keys/jwk.js";
import { loadKeys } from "../src/keys/sources.js";
import { CLI, newEncryptionKey, newSigningKey, REPO_ROOT, tempDir, VENV_PYTHON, writePlainSafetensors } from "./helpers.js";

const dir = tempDir("ctensors-errors-");

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function ct(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const r = await execa("node", [CLI, ...args], {
    cwd: REPO_ROOT,
    stdin: "ignore",
    reject: false,
    env: { CRYPTOTENSOR_KEYS: "", ...env },
    timeout: 60_000,
  });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Raw control characters a terminal acts on (C0 but tab/newline, DEL, C1) and bidi overrides. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the test looks for raw control characters
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u;

// The flags of every CLI command: no library message may name one.
const FLAGS = [
  ...new Set(
    Object.values(COMMANDS)
      .flatMap((c) => Object.keys(c.options))
      .map((o) => `--${o}`),
  ),
];

let keysDir: string;
let rawKey: string;
let plain: string;
beforeAll(async () => {
  keysDir = join(dir, "keys");
  expect((await ct(["keygen", "--out", keysDir])).code).toBe(0);
  rawKey = (JSON.parse(readFileSync(join(keysDir, "enc.jwk"), "utf8")) as { k: string }).k;
  plain = join(dir, "plain.safetensors");
  writePlainSafetensors(plain, [
    { name: "w", dtype: "F32", shape: [4, 6] },
    { name: "b", dtype: "F32", shape: [3] },
  ]);
});

describe("usage errors and bugs", () => {
  it("a usage error is ERR_CT_USAGE, exit 2, with the usage line", async () => {
    const r = await ct(["inspect"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("[ERR_CT_USAGE]: expected IN");
    expect(r.stderr).toContain("usage: ctensors inspect IN");
  });

  it("a TypeError (a bug of ours) is exit 1 'unexpected error', not a usage error", async () => {
    const lines: string[] = [];
    const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l), quiet: true };
    const original = COMMANDS.inspect.run;
    COMMANDS.inspect.run = async () => {
      throw new TypeError("cannot read properties of undefined");
    };
    try {
      expect(await main(["inspect", "x"], io)).toBe(1);
    } finally {
      COMMANDS.inspect.run = original;
    }
    expect(lines.join("\n")).toContain("unexpected error: TypeError: cannot read properties of undefined");
    expect(lines.join("\n")).not.toContain("usage:");
  });

  it("a usage error thrown by the library keeps exit 2 in-process too", async () => {
    const lines: string[] = [];
    const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l), quiet: true };
    const original = COMMANDS.inspect.run;
    COMMANDS.inspect.run = async () => {
      throw usageError("bad");
    };
    try {
      expect(await main(["inspect", "x"], io)).toBe(2);
    } finally {
      COMMANDS.inspect.run = original;
    }
  });

  it("instanceof recognises a CryptoTensorsError from another copy of the module, not a look-alike", async () => {
    const dist = (await import(join(REPO_ROOT, "plugin", "dist", "errors.js"))) as typeof import("../src/errors.js");
    expect(dist.CryptoTensorsError).not.toBe(CryptoTensorsError);
    expect(new dist.CryptoTensorsError("ERR_CT_IO", "x")).toBeInstanceOf(CryptoTensorsError);
    expect(new CryptoTensorsError("ERR_CT_IO", "x")).toBeInstanceOf(dist.CryptoTensorsError);
    const lookalike = Object.assign(new Error("x"), { name: "CryptoTensorsError", code: "ERR_CT_IO" });
    expect(lookalike).not.toBeInstanceOf(CryptoTensorsError);
  });

  it("library messages name options, never CLI flags; the CLI adds the flag hint by code", async () => {
    const cases: [CryptoTensorsError, string][] = [];
    const grab = async (p: Promise<unknown>) => {
      try {
        await p;
      } catch (err) {
        return err as CryptoTensorsError;
      }
      throw new Error("expected an error");
    };
    const k = newEncryptionKey();
    const s = newSigningKey();
    cases.push([await grab(encryptFile(plain, join(dir, "x1.safetensors"), { key: k, signKey: s, tensors: ["nothing*"] })), "--tensors"]);
    cases.push([
      await grab(encryptFile(plain, join(dir, "x2.safetensors"), { key: k, signKey: s, chunkBytes: 3_000_000_000 })),
      "--chunk-size",
    ]);
    const { TrustStore } = await import("../src/keys/trust.js");
    cases.push([
      await grab(Promise.resolve().then(() => new TrustStore([]).verify(new Uint8Array(), new Uint8Array(64), {} as never))),
      "--trust",
    ]);
    const { resolveEncryptionKey } = await import("../src/keys/keyring.js");
    cases.push([await grab(resolveEncryptionKey([], { kid: "k", alg: "aes256gcm" } as never)), "--key"]);
    const { hubSettings } = await import("../src/hub/settings.js");
    cases.push([await grab(Promise.resolve().then(() => hubSettings({ hubUrl: "ftp://x" }))), "--hub-url"]);
    const { checkOutput } = await import("../src/model/folder.js");
    cases.push([await grab(checkOutput(join(dir, "in"), plain, false)), "--force"]);
    for (const [err, flag] of cases) {
      expect(err, flag).toBeInstanceOf(CryptoTensorsError);
      for (const f of FLAGS) expect(err.message, `${err.message} names ${f}`).not.toMatch(new RegExp(`${f}(?![\\w-])`));
      const lines: string[] = [];
      const original = COMMANDS.inspect.run;
      COMMANDS.inspect.run = async () => {
        throw err;
      };
      try {
        await main(["inspect", "x"], { out: (l) => lines.push(l), err: (l) => lines.push(l), quiet: true });
      } finally {
        COMMANDS.inspect.run = original;
      }
      expect(lines.join("\n"), err.message).toContain(flag);
    }
  });
});

describe("the sidecar's socket refusals", () => {
  it("name no flag in the library; the CLI adds the --socket hint and never suggests chmod on a shared directory", async () => {
    const open = join(dir, "open-socket-dir");
    mkdirSync(open, { mode: 0o755 });
    chmodSync(open, 0o755);
    const r = await ct([
      "serve",
      "--socket",
      join(open, "s.sock"),
      "--key",
      join(keysDir, "enc.jwk"),
      "--trust",
      join(keysDir, "sign.pub.jwk"),
    ]);
    expect(r.code).toBe(8);
    expect(r.stderr).toContain("group and others must have no access (choose another --socket, in a directory of your own (mode 0700))");
    expect(r.stderr).not.toContain("chmod");
  });
});

describe("engines agree on chunk sizes beyond 2^31", () => {
  let big: string;
  beforeAll(async () => {
    // Written by the reference: a v2 file whose chunk_size (3e9) exceeds its tensors (small on disk).
    const encJwk = join(keysDir, "enc.jwk");
    big = join(dir, "chunk3e9.safetensors");
    const r = await execa(
      VENV_PYTHON,
      [
        join(REPO_ROOT, "test", "interop", "ref_tool.py"),
        "write",
        "--plain",
        plain,
        "--out",
        big,
        "--enc-key",
        encJwk,
        "--sign-key",
        join(keysDir, "sign.jwk"),
        "--version",
        "2",
        "--chunk-size",
        "3000000000",
      ],
      { reject: false },
    );
    expect(r.stdout).toContain('"ok": true');
  });

  for (const engine of ["js", "native"]) {
    it(`CTENSORS_ENGINE=${engine} decrypts it, bit-exact`, async () => {
      const out = join(dir, `dec-${engine}.safetensors`);
      const r = await ct(["decrypt", big, out, "--key", join(keysDir, "enc.jwk"), "--trust", join(keysDir, "sign.pub.jwk")], {
        CTENSORS_ENGINE: engine,
      });
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
      const payload = (f: string) => {
        const b = readFileSync(f);
        return b.subarray(8 + Number(b.readBigUInt64LE(0)));
      };
      expect(Buffer.compare(payload(out), payload(plain))).toBe(0);
      const v = await ct(["verify", big, "--key", join(keysDir, "enc.jwk"), "--trust", join(keysDir, "sign.pub.jwk"), "--json"], {
        CTENSORS_ENGINE: engine,
      });
      expect(v.code).toBe(0);
    });

    it(`CTENSORS_ENGINE=${engine}: encrypt --chunk-size 3000000000 is a usage error (exit 2), nothing written`, async () => {
      const out = join(dir, `enc-${engine}.safetensors`);
      const r = await ct(
        ["encrypt", plain, out, "--key", join(keysDir, "enc.jwk"), "--sign-key", join(keysDir, "sign.jwk"), "--chunk-size", "3000000000"],
        { CTENSORS_ENGINE: engine },
      );
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("[ERR_CT_USAGE]");
      expect(r.stderr).toContain("--chunk-size");
      expect(() => readFileSync(out)).toThrow();
    });
  }
});

describe("no key material in messages", () => {
  it("a raw key given where a path belongs is never echoed (CLI, sidecar)", async () => {
    const runs = [
      await ct(["decrypt", plain, join(dir, "o.safetensors"), "--key", rawKey, "--trust", join(keysDir, "sign.pub.jwk")]),
      await ct(["verify", plain, "--trust", rawKey]),
      await ct(["encrypt", plain, join(dir, "o2.safetensors"), "--key", rawKey, "--sign-key", join(keysDir, "sign.jwk")]),
      await ct(["encrypt", plain, join(dir, "o3.safetensors"), "--key", join(keysDir, "enc.jwk"), "--sign-key", rawKey]),
      await ct(["serve", "--socket", join(dir, "s", "sock"), "--key", rawKey, "--trust", join(keysDir, "sign.pub.jwk")]),
    ];
    for (const r of runs) {
      expect(r.code).toBe(6);
      expect(r.stdout + r.stderr).not.toContain(rawKey);
      expect(r.stdout + r.stderr).not.toContain(rawKey.slice(0, 12));
      expect(r.stderr).toMatch(/--(key|trust|sign-key)(\/--keys)?: cannot read the key file \(ENOENT\)/);
    }
  });

  it("kty, alg and crv values of a key are never echoed", async () => {
    const secret = "c2VjcmV0LWtleS1tYXRlcmlhbC1kby1ub3QtZWNobw==";
    const jwk = toJwk(newEncryptionKey());
    for (const [field, bad] of [
      ["kty", { ...jwk, kty: secret }],
      ["alg", { ...jwk, alg: secret }],
      ["crv", { kty: "OKP", crv: secret, x: jwk.k }],
    ] as const) {
      const path = join(dir, `bad-${field}.jwk`);
      writeFileSync(path, JSON.stringify(bad));
      const r = await ct(["decrypt", plain, join(dir, "o4.safetensors"), "--key", path, "--trust", join(keysDir, "sign.pub.jwk")]);
      expect(r.code, r.stderr).toBe(6);
      expect(r.stderr).toContain(`"${field}"`);
      expect(r.stderr).not.toContain(secret);
      expect(() => parseJwk(bad)).toThrow(CryptoTensorsError);
    }
  });

  it("the library names the source by its label, and its cause holds no path", async () => {
    const err = await loadKeys(rawKey, { label: "the key" }).catch((e: unknown) => e as CryptoTensorsError);
    expect(err.message).toBe(
      "the key: cannot read the key file (ENOENT); a key source is a JWK file path, file://..., env:NAME, https://... or inline JSON",
    );
    expect(JSON.stringify({ m: err.message, c: String(err.cause) })).not.toContain(rawKey);
  });
});

describe("untrusted header strings on the terminal", () => {
  const evil = "x\u001b]0;pwned\u0007\u001b[2K\r\u009b1A\u202egnp.exe\u2066\n  plain safetensors";
  let file: string;
  beforeAll(async () => {
    const src = join(dir, "evil-plain.safetensors");
    writePlainSafetensors(
      src,
      [
        { name: evil, dtype: "F32", shape: [2] },
        { name: "ok", dtype: "F32", shape: [1] },
      ],
      { format: "pt", [evil]: evil },
    );
    const key = { ...newEncryptionKey(), kid: evil, jku: `file:///${evil}` };
    const signKey = { ...newSigningKey(), kid: evil };
    file = join(dir, "evil.safetensors");
    await encryptFile(src, file, { key, signKey });
    writeFileSync(join(dir, "evil-sign.pub.jwk"), JSON.stringify(toJwk(publicKeyOf(signKey))));
  });

  it("inspect escapes control and bidi characters in names, metadata, kid and jku", async () => {
    const r = await ct(["inspect", file]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(RAW_CONTROL);
    expect(r.stdout).toContain(printable(evil));
    expect(r.stdout).toContain("\\x1b]0;pwned\\x07");
    expect(r.stdout).toContain("\\u202e");
    // The newline in the name did not start a fake line.
    expect(r.stdout.split("\n").filter((l) => l.startsWith("  plain safetensors"))).toEqual([]);
  });

  it("inspect --json stays valid JSON that parses back to the exact strings", async () => {
    const r = await ct(["inspect", file, "--json"]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(RAW_CONTROL);
    const report = JSON.parse(r.stdout) as {
      tensors: { name: string }[];
      encKey: { kid: string; jku: string };
      signer: { kid: string };
      metadata: Record<string, string>;
    };
    expect(report.tensors.map((t) => t.name)).toContain(evil);
    expect(report.encKey.kid).toBe(evil);
    expect(report.signer.kid).toBe(evil);
    expect(report.metadata[evil]).toBe(evil);
  });

  it("verify's output and error messages quoting names from the file are escaped", async () => {
    const ok = await ct(["verify", file, "--trust", join(dir, "evil-sign.pub.jwk")]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout + ok.stderr).not.toMatch(RAW_CONTROL);
    // Refused: no key for the kid the file names (a message quoting it).
    const refused = await ct([
      "decrypt",
      file,
      join(dir, "evil-out.safetensors"),
      "--key",
      join(keysDir, "enc.jwk"),
      "--trust",
      join(dir, "evil-sign.pub.jwk"),
    ]);
    expect(refused.code).toBe(6);
    expect(refused.stderr).toContain("pwned");
    expect(refused.stderr).not.toMatch(RAW_CONTROL);
  });

  it("quote and toJson are JSON and escape C1 and bidi too; printable escapes everything", () => {
    expect(JSON.parse(quote(evil))).toBe(evil);
    expect(quote(evil)).not.toMatch(RAW_CONTROL);
    expect(JSON.parse(toJson({ [evil]: [evil] }, 2))).toEqual({ [evil]: [evil] });
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the test looks for raw control characters
    expect(printable(evil)).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/u);
    expect(printable("plain name.weight")).toBe("plain name.weight");
  });
});
