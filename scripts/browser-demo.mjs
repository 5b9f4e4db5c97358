#!/usr/bin/env node
// Serves the browser demo (demo/browser/) on 127.0.0.1 with everything it needs from this checkout:
//   /                      demo/browser/index.html (+ main.js)
//   /lib/transformers.js   @huggingface/transformers' self-contained web build (onnxruntime-web inside)
//   /ort/*                 onnxruntime-web's wasm files (env.backends.onnx.wasm.wasmPaths; no CDN)
//   /lib/ctensors-transformers.web.js   the browser build of ctensors/transformers (npm run build)
//   /hub/{model}/resolve/{rev}/{path}   a TEST/DEMO STAND-IN for the Hub: static files of local folders
//   /keys/jwks.json        the JWK set the page uses (demo only: a real app gets keys from a key service)
// Usage: node scripts/browser-demo.mjs --model acme/secret-bert=DIR [--model NAME=DIR…] --keys JWKS_FILE [--port N]
import { readFileSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, extname, join, normalize, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript",
  ".mjs": "text/javascript",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".map": "application/json",
};

/** Resolves `rel` inside `base`, refusing anything that escapes it. */
function inside(base, rel) {
  const p = normalize(join(base, rel));
  return p.startsWith(base + sep) ? p : undefined;
}

/**
 * Starts the server. `models` maps a Hub-style id to a folder; `jwks` is the key set served at
 * /keys/jwks.json, or an object {name: JWK-set text} served at /keys/<name>.
 * Returns { url, requests, close }.
 */
export async function startDemoServer({ models, jwks, port = 0 }) {
  const requests = [];
  const routes = [
    ["/lib/transformers.js", join(root, "node_modules", "@huggingface", "transformers", "dist", "transformers.js")],
    ["/lib/ctensors-transformers.web.js", join(root, "plugin", "dist", "transformers.web.js")],
  ];
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    requests.push(path);
    let file;
    const hub = /^\/hub\/(.+?)\/resolve\/[^/]+\/(.+)$/.exec(path);
    if (path === "/" || path === "/index.html") file = join(root, "demo", "browser", "index.html");
    else if (path === "/main.js") file = join(root, "demo", "browser", "main.js");
    else if (path.startsWith("/keys/") && typeof jwks === "object" && jwks[path.slice(6)])
      return void res.writeHead(200, { "content-type": "application/jwk-set+json", "cache-control": "no-store" }).end(jwks[path.slice(6)]);
    else if (path === "/keys/jwks.json" && typeof jwks === "string")
      return void res.writeHead(200, { "content-type": "application/jwk-set+json", "cache-control": "no-store" }).end(jwks);
    else if (path.startsWith("/ort/")) file = inside(join(root, "node_modules", "onnxruntime-web", "dist"), path.slice(5));
    else if (hub && models[hub[1]]) file = inside(models[hub[1]], hub[2]);
    else file = routes.find(([p]) => p === path)?.[1];
    try {
      if (!file || !statSync(file).isFile()) throw new Error("not found");
      const data = readFileSync(file);
      res
        .writeHead(200, {
          "content-type": TYPES[extname(file)] ?? "application/octet-stream",
          "content-length": data.length,
          "cache-control": "no-store",
        })
        .end(data);
    } catch {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
    }
  });
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${server.address().port}/`, requests, close: () => new Promise((r) => server.close(() => r())) };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const args = process.argv.slice(2);
  const models = {};
  let jwks;
  let port = 8080;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--model") {
      const [name, dir] = args[++i].split("=");
      models[name] = normalize(dir);
    } else if (args[i] === "--keys") jwks = readFileSync(args[++i], "utf8");
    else if (args[i] === "--port") port = Number(args[++i]);
  }
  if (!jwks || !Object.keys(models).length) {
    console.error("usage: node scripts/browser-demo.mjs --model acme/secret-bert=DIR --keys JWKS_FILE [--port N]");
    process.exit(2);
  }
  const s = await startDemoServer({ models, jwks, port });
  console.log(`demo at ${s.url}?model=${Object.keys(models)[0]}`);
}
