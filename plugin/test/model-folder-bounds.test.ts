// A model folder's walk (listModelFiles) is bounded in depth and in entries: a folder nested deeper
// than MAX_MODEL_DEPTH, or holding more than MAX_MODEL_ENTRIES entries, is refused with ERR_CT_USAGE
// naming it, instead of being walked whole (a sidecar asked to open `/` would walk the file system).
// The CLI commands and the sidecar list folders through this one function.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { CryptoTensorsError } from "../src/errors.js";
import { listModelFiles, MAX_MODEL_DEPTH, MAX_MODEL_ENTRIES } from "../src/model/folder.js";
import { CLI, tempDir, withDeadline, writePlainSafetensors } from "./helpers.js";

const dir = tempDir("ctensors-folder-bounds-");

async function refusal(root: string): Promise<CryptoTensorsError> {
  const err = await withDeadline(30_000, "the refusal", () =>
    listModelFiles(root).then(
      () => expect.fail("expected a refusal"),
      (e: unknown) => e,
    ),
  );
  expect(err).toBeInstanceOf(CryptoTensorsError);
  return err as CryptoTensorsError;
}

/** root/d1/d2/.../d<levels>/model.safetensors */
function nested(name: string, levels: number): string {
  const root = join(dir, name);
  const parts = Array.from({ length: levels }, (_, i) => `d${i + 1}`);
  mkdirSync(join(root, ...parts), { recursive: true });
  writePlainSafetensors(join(root, "model.safetensors"), [{ name: "a", dtype: "F32", shape: [2] }]);
  writePlainSafetensors(join(root, ...parts, "deep.safetensors"), [{ name: "b", dtype: "F32", shape: [2] }]);
  return root;
}

describe("listModelFiles bounds", () => {
  it(`lists files up to ${MAX_MODEL_DEPTH} folders deep (onnx/, a pipeline's subfolders)`, async () => {
    const root = nested("deep-enough", MAX_MODEL_DEPTH);
    mkdirSync(join(root, "onnx"));
    writeFileSync(join(root, "onnx", "model.onnx"), "");
    mkdirSync(join(root, ".git", "objects", "aa", "bb"), { recursive: true }); // skipped, whatever its depth
    const files = await listModelFiles(root);
    expect(files.safetensors).toEqual(["d1/d2/d3/deep.safetensors", "model.safetensors"]);
    expect(files.onnx).toEqual(["onnx/model.onnx"]);
  });

  it("refuses a folder nested deeper, with ERR_CT_USAGE naming the folder and the deep subfolder", async () => {
    const root = nested("too-deep", MAX_MODEL_DEPTH + 1);
    const err = await refusal(root);
    expect(err.code).toBe("ERR_CT_USAGE");
    expect(err.message).toContain(`${root} is not a model folder`);
    expect(err.message).toContain("d1/d2/d3/d4");
  });

  it(`refuses a folder holding more than ${MAX_MODEL_ENTRIES} entries, with ERR_CT_USAGE naming it`, async () => {
    const root = join(dir, "wide");
    mkdirSync(join(root, "sub"), { recursive: true });
    writePlainSafetensors(join(root, "model.safetensors"), [{ name: "a", dtype: "F32", shape: [2] }]);
    for (let i = 0; i < MAX_MODEL_ENTRIES; i++) writeFileSync(join(root, "sub", `f${i}.txt`), "");
    const err = await refusal(root);
    expect(err.code).toBe("ERR_CT_USAGE");
    expect(err.message).toContain(`${root} holds more than ${MAX_MODEL_ENTRIES} files and folders`);
  });

  it("refuses / at once (the whole file system is not walked)", async () => {
    expect((await refusal("/")).code).toBe("ERR_CT_USAGE");
  });

  it("the CLI says so with exit 2 (usage)", async () => {
    const root = nested("too-deep-cli", MAX_MODEL_DEPTH + 1);
    const r = await execa(process.execPath, [CLI, "inspect", root], { reject: false });
    expect(r.exitCode, r.stderr).toBe(2);
    expect(r.stderr).toContain("ERR_CT_USAGE");
    expect(r.stderr).toContain("is not a model folder");
  });
});
