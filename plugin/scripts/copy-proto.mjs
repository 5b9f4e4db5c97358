#!/usr/bin/env node
// Copies the sidecar protocol (proto/ at the repository root, shared with the Python stubs) into the
// package as plugin/proto/, where src/sidecar/proto.ts and dist/sidecar/proto.js load it from, so that
// the published package carries its own contract. Run by `npm run build` and before `npm pack`.
import { cpSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const plugin = join(dirname(fileURLToPath(import.meta.url)), "..");
const target = join(plugin, "proto");
rmSync(target, { recursive: true, force: true });
cpSync(join(plugin, "..", "proto"), target, { recursive: true });
