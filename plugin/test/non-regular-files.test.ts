// Anything that is not a regular file (after symlinks) is refused with ERR_CT_IO before any blocking
// open: a FIFO would otherwise block the open forever, on one of Node's few I/O threads. Covered: the
// reader (open and readHeader), the model-folder listing, and the CLI commands that read models. Every
// check runs under a deadline, and blocked opens are released afterwards, so a regression fails
// instead of hanging.

import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { CryptoTensorsReader, readHeader } from "../src/container/reader.js";
import { listModelFiles } from "../src/model/folder.js";
import { openRegularFile } from "../src/io/regular-file.js";
import { publicKeyOf, toJwk } from "../src/keys/jwk.js";
import {
  CLI,
  mkfifo,
  newEncryptionKey,
  newSigningKey,
  releaseFifos,
  REPO_ROOT,
  tempDir,
  withDeadline,
  writePlainSafetensors,
} from "./helpers.js";

const dir = tempDir("ctensors-fifo-");
const fifo = join(dir, "model.safetensors");
const link = join(dir, "link.safetensors");
const folder = join(dir, "folder");
const folderViaLink = join(dir, "folder-link");
const straysOnly = join(dir, "strays");
mkfifo(fifo);
symlinkSync(fifo, link);
mkdirSync(folder);
writePlainSafetensors(join(folder, "model-00001-of-00002.safetensors"), [{ name: "a", dtype: "F32", shape: [2] }]);
mkfifo(join(folder, "model-00002-of-00002.safetensors"));
mkdirSync(folderViaLink);
symlinkSync(fifo, join(folderViaLink, "model.safetensors"));
mkdirSync(straysOnly);
writePlainSafetensors(join(straysOnly, "model.safetensors"), [{ name: "a", dtype: "F32", shape: [2] }]);
mkfifo(join(straysOnly, "notes.txt")); // not a model file: not part of the model, left alone
const allFifos = [fifo, join(folder, "model-00002-of-00002.safetensors"), join(straysOnly, "notes.txt")];
afterAll(() => releaseFifos(allFifos));

const refused = (p: Promise<unknown>) =>
  withDeadline(10_000, "the refusal", () =>
    p.then(
      () => expect.fail("expected a refusal"),
      (e: unknown) => e,
    ),
  );

describe("library", () => {
  for (const [label, path] of [
    ["a FIFO", fifo],
    ["a symlink to a FIFO", link],
  ] as const) {
    it(`${label}: open, readHeader and openRegularFile fail with ERR_CT_IO`, async () => {
      try {
        for (const attempt of [() => CryptoTensorsReader.open(path), () => readHeader(path), () => openRegularFile(path)]) {
          expect(await refused(attempt())).toMatchObject({
            code: "ERR_CT_IO",
            message: expect.stringContaining("a FIFO (named pipe), not a regular file"),
          });
        }
      } finally {
        releaseFifos(allFifos);
      }
    });
  }

  it("a directory is refused by the reader too", async () => {
    expect(await refused(CryptoTensorsReader.open(folder))).toMatchObject({
      code: "ERR_CT_IO",
      message: expect.stringContaining("a directory"),
    });
  });

  it("a folder listing refuses a model file that is a FIFO (or a symlink to one) and skips stray non-model FIFOs", async () => {
    for (const f of [folder, folderViaLink]) {
      expect(await refused(listModelFiles(f))).toMatchObject({ code: "ERR_CT_IO", message: expect.stringContaining("not a regular file") });
    }
    expect((await listModelFiles(straysOnly)).safetensors).toEqual(["model.safetensors"]);
    expect((await listModelFiles(straysOnly)).others).toEqual([]);
  });
});

describe("CLI", () => {
  async function ct(...args: string[]): Promise<{ code: number; stderr: string }> {
    try {
      const r = await execa("node", [CLI, ...args], { cwd: REPO_ROOT, stdin: "ignore", reject: false, timeout: 20_000 });
      return { code: r.exitCode ?? -1, stderr: String(r.stderr) };
    } finally {
      releaseFifos(allFifos);
    }
  }
  const signKey = newSigningKey();
  writeFileSync(join(dir, "enc.jwk"), JSON.stringify(toJwk(newEncryptionKey())));
  writeFileSync(join(dir, "sign.jwk"), JSON.stringify(toJwk(signKey)));
  writeFileSync(join(dir, "sign.pub.jwk"), JSON.stringify(toJwk(publicKeyOf(signKey))));
  const keyArgs = ["--trust", join(dir, "sign.pub.jwk"), "--key", join(dir, "enc.jwk")];

  for (const [label, path] of [
    ["a FIFO", fifo],
    ["a symlink to a FIFO", link],
    ["a folder with a FIFO shard", folder],
  ] as const) {
    it(`verify, inspect, decrypt and encrypt of ${label}: exit 8 (ERR_CT_IO), no hang`, async () => {
      for (const args of [
        ["verify", path, ...keyArgs],
        ["inspect", path],
        ["decrypt", path, join(dir, "out-dec"), ...keyArgs],
        ["encrypt", path, join(dir, "out-enc"), "--key", join(dir, "enc.jwk"), "--sign-key", join(dir, "sign.jwk")],
      ]) {
        const r = await ct(...args);
        expect({ args, code: r.code }).toEqual({ args, code: 8 });
        expect(r.stderr).toContain("not a regular file");
      }
    }, 120_000);
  }
});
