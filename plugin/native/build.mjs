// Builds the native AEAD engine (plugin/native/ctensors_native.c) with plain gcc against the headers
// that ship with Node (node_api.h, openssl/*.h). No node-gyp, no download, no -lcrypto: the node
// binary exports OpenSSL's symbols, resolved when the addon loads. The output is an N-API addon, so one
// file serves every Node version; it goes where node-gyp-build looks for prebuilt addons:
// <package>/prebuilds/<platform>-<arch>/node.napi.<libc>.node (the published package ships the
// linux-x64 one; on other platforms run `node node_modules/ctensors/native/build.mjs`).
// If anything is missing, prints one line and exits 0: the pure-JS engine is used instead
// (CTENSORS_ENGINE=native then fails clearly). --require makes that an error (exit 1): packing a
// release without its engine.

import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, realpathSync, rmSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const source = join(here, "ctensors_native.c");
/** The C library's tag (node-gyp-build's libc tag): glibc, unless Node reports none (musl). */
const libc = process.report?.getReport().header.glibcVersionRuntime ? "glibc" : "musl";
const outDir = join(here, "..", "prebuilds", `${process.platform}-${process.arch}`);
const output = join(outDir, `node.napi.${libc}.node`);
const include = join(dirname(realpathSync(process.execPath)), "..", "include", "node");
const cc = process.env.CC || "gcc";

function fallback(why) {
  if (process.argv.includes("--require")) {
    console.error(`[native] not built (${why})`);
    process.exit(1);
  }
  console.log(`[native] not built (${why}): the pure-JS crypto engine will be used`);
  process.exit(0);
}

if (process.platform !== "linux") fallback(`platform ${process.platform} is not supported`);
if (!existsSync(join(include, "node_api.h")) || !existsSync(join(include, "openssl", "evp.h")))
  fallback(`no Node headers with OpenSSL at ${include}`);
if (
  existsSync(output) &&
  statSync(output).mtimeMs >= statSync(source).mtimeMs &&
  statSync(output).mtimeMs >= statSync(fileURLToPath(import.meta.url)).mtimeMs
) {
  process.exit(0); // up to date
}
mkdirSync(outDir, { recursive: true });
const args = [
  "-O2",
  "-std=gnu11",
  "-fPIC",
  "-shared",
  "-pthread",
  "-Wall",
  "-Wextra",
  "-Wno-unused-parameter",
  "-fvisibility=hidden",
  "-DNAPI_VERSION=8",
  "-DNODE_GYP_MODULE_NAME=ctensors_native",
  `-I${include}`,
  source,
  "-o",
  output,
];
try {
  execFileSync(cc, args, { stdio: ["ignore", "inherit", "inherit"] });
} catch (err) {
  fallback(`${cc} failed: ${err.code === "ENOENT" ? "no compiler" : `exit ${err.status}`}`);
}
// Load it once: a node whose binary does not export OpenSSL's symbols fails here, not at first use.
try {
  execFileSync(process.execPath, ["-e", `require(${JSON.stringify(output)}).opensslVersion()`], { stdio: ["ignore", "ignore", "pipe"] });
} catch (err) {
  rmSync(output, { force: true });
  fallback(
    `the addon does not load in this node: ${
      String(err.stderr ?? err)
        .split("\n")
        .find((l) => /Error/.test(l)) ?? "unknown error"
    }`,
  );
}
console.log(`[native] built ${output}`);
