// What the published packages hold: `npm pack --dry-run --json` of plugin/ (the prebuilt engine, the
// proto, the C source and its build script; nothing from tests, benchmarks or fixtures), the metadata
// a registry shows, the one version shared by the npm package, the Python package and the sidecar,
// and the same Apache-2.0 text everywhere.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../plugin/test/helpers.js";

const plugin = join(REPO_ROOT, "plugin");
const pkg = JSON.parse(readFileSync(join(plugin, "package.json"), "utf8")) as Record<string, unknown> & { version: string };

describe("the npm package", () => {
  it("ships the prebuilt engine, the proto, the engine's source, dist and bin; nothing from tests, benches or fixtures", async () => {
    // --ignore-scripts: lists what is there now (npm run build made it); the install test packs for real.
    const { stdout } = await execa("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: plugin });
    const files = (JSON.parse(stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
    for (const required of [
      "package.json",
      "README.md",
      "LICENSE",
      "bin/ctensors.js",
      "prebuilds/linux-x64/node.napi.glibc.node",
      "native/build.mjs",
      "native/ctensors_native.c",
      "proto/ctensors/sidecar/v1/sidecar.proto",
      "dist/index.js",
      "dist/index.d.ts",
      "dist/cli/bin.js",
      "dist/sidecar/index.js",
      "dist/sidecar/index.d.ts",
      "dist/transformers/node.js",
      "dist/transformers.web.js",
    ]) {
      expect(files, required).toContain(required);
    }
    for (const f of files) {
      expect(f).not.toMatch(/(^|\/)(test|tests|bench|fixtures|src|scripts)\//);
      expect(f).not.toMatch(/\.(map|tsbuildinfo)$|\.test\./);
    }
  });

  it("has the metadata a registry shows, and every export has its types", () => {
    expect(pkg.name).toBe("ctensors");
    expect(pkg.license).toBe("Apache-2.0");
    expect(pkg.repository).toMatchObject({ type: "git", directory: "plugin" });
    expect((pkg.keywords as string[]).length).toBeGreaterThan(3);
    expect(pkg.engines).toEqual({ node: ">=20" });
    expect(pkg.bin).toEqual({ ctensors: "bin/ctensors.js" });
    for (const [name, target] of Object.entries(pkg.exports as Record<string, Record<string, string>>))
      expect(target.types, name).toMatch(/\.d\.ts$/);
    expect(Object.keys(pkg.exports as object)).toContain("./sidecar");
  });
});

describe("one version", () => {
  it("plugin/package.json, the Python package, `ctensors --version` and the sidecar's version agree", async () => {
    const py = readFileSync(join(REPO_ROOT, "python-shim", "src", "ctensors", "_version.py"), "utf8");
    expect(/^__version__ = "([^"]+)"$/m.exec(py)?.[1]).toBe(pkg.version);
    const { stdout } = await execa(process.execPath, [join(plugin, "bin", "ctensors.js"), "--version"]);
    expect(stdout.trim()).toBe(pkg.version);
    const { SIDECAR_VERSION } = await import("../../plugin/src/sidecar/index.js");
    expect(SIDECAR_VERSION).toBe(pkg.version);
    expect(readFileSync(join(REPO_ROOT, "python-shim", "pyproject.toml"), "utf8")).toMatch(
      /version = \{ attr = "ctensors\._version\.__version__" \}/,
    );
  });

  it("the packages carry the repository's license text", () => {
    const license = readFileSync(join(REPO_ROOT, "LICENSE"), "utf8");
    expect(license).toMatch(/Apache License\s+Version 2\.0, January 2004/);
    expect(readFileSync(join(plugin, "LICENSE"), "utf8")).toBe(license);
    expect(readFileSync(join(REPO_ROOT, "python-shim", "LICENSE"), "utf8")).toBe(license);
  });
});
