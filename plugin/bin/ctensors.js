#!/usr/bin/env node
// The `ctensors` executable. It lives outside dist/ so that `npm ci` links it even before the first
// build (npm skips bin links whose target does not exist yet).
import { existsSync } from "node:fs";

const entry = new URL("../dist/cli/bin.js", import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write("ctensors: not built yet: run `npm run build` (or `npm test` / `npm run demo`) in the repository root\n");
  process.exit(1);
}
await import(entry.href);
