#!/usr/bin/env node
// Bundles the browser build of `ctensors/transformers` (plugin/src/transformers/web.ts) into
// plugin/dist/transformers.web.js, an ES module with no Node built-ins: crypto/aead.ts and
// crypto/signature.ts are swapped for their *.web.ts variants (@noble), and the few node: modules that
// shared code imports but never calls in a browser are replaced by stubs that throw.
import { build } from "esbuild";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const plugin = join(dirname(fileURLToPath(import.meta.url)), "..");
const src = join(plugin, "src");
const WEB_VARIANTS = new Map([
  [join(src, "crypto", "aead.ts"), join(src, "crypto", "aead.web.ts")],
  [join(src, "crypto", "signature.ts"), join(src, "crypto", "signature.web.ts")],
]);
const STUB = join(src, "transformers", "node-stubs.web.ts");

/** The esbuild plugin that makes a browser bundle of plugin/src code (also used by the browser test). */
export const ctensorsWebPlugin = {
  name: "ctensors-web",
  setup(b) {
    b.onResolve({ filter: /^node:/ }, () => ({ path: STUB }));
    b.onResolve({ filter: /\.js$/ }, (args) => {
      if (!args.path.startsWith(".")) return undefined;
      const ts = resolve(args.resolveDir, args.path.replace(/\.js$/, ".ts"));
      const target = WEB_VARIANTS.get(ts) ?? ts;
      return existsSync(target) ? { path: target } : undefined;
    });
  },
};

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  await build({
    entryPoints: [join(src, "transformers", "web.ts")],
    outfile: join(plugin, "dist", "transformers.web.js"),
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    sourcemap: true,
    legalComments: "linked",
    plugins: [ctensorsWebPlugin],
    logLevel: "warning",
  });
}
