// The browser build of ctensors/transformers in headless Chromium (Debian's `chromium`, driven by
// playwright-core; never a downloaded browser): the demo page (demo/browser/) runs the encrypted
// model with transformers.js + onnxruntime-web (wasm from node_modules, no CDN) and shows the output,
// which must equal the plaintext model's output in the same browser. A screenshot is saved to
// test-output/transformersjs-browser.png. Setup (scripts/setup.mjs) installs chromium; when it is
// missing this test FAILS (it is never skipped). The shared test vectors (test/vectors/) are replayed in
// the page through the browser build of the in-memory reader: the same verdicts as in Node.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "../../plugin/test/helpers.js";
import { copyDir, ctOk, FIXTURES, REPO_ROOT, runPipeline, weightNeedles, type RunResult } from "./helpers.js";
// @ts-expect-error: a plain .mjs script without types
import { startDemoServer } from "../../scripts/browser-demo.mjs";
// @ts-expect-error: a plain .mjs script without types
import { ctensorsWebPlugin } from "../../plugin/scripts/build-web.mjs";
import { expectedVerdict, type Manifest } from "../vectors/replay.js";
import { SIGNATURE_KEY } from "../../plugin/src/container/reserved.js";
import { flipBase64, tamper } from "../../plugin/test/hostile-files.js";
// @ts-expect-error: a plain .mjs module without types (shared with bench/ops/tjs-browser.mjs)
import * as shared from "./browser-page.mjs";

const { CHROMIUM, CONTAINER_CACHE, jwksOf, launchChromium } = shared;
const OUT = join(REPO_ROOT, "test-output");
const work = tempDir("ctensors-browser-");
let browser: Browser;
let server: { url: string; requests: string[]; close(): Promise<void> };
let nodeBaseline: RunResult;
let encDir: string;

function editText(file: string, from: string | RegExp, to: string): void {
  const text = readFileSync(file, "utf8");
  const edited = text.replace(from, to);
  expect(edited, `${file} was not edited`).not.toBe(text);
  writeFileSync(file, edited);
}

const jwks = jwksOf as (...files: string[]) => string;

beforeAll(async () => {
  expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: run \`node scripts/setup.mjs\` as root (it installs Debian's chromium)`).toBe(true);
  expect(existsSync(join(REPO_ROOT, "plugin", "dist", "transformers.web.js")), "run npm run build first").toBe(true);
  const keys = join(work, "keys");
  const other = join(work, "other");
  await ctOk(["keygen", "--out", keys]);
  await ctOk(["keygen", "--out", other]);
  const enc = join(work, "enc");
  encDir = enc;
  await ctOk(["encrypt", join(FIXTURES, "tiny-bert-extdata"), enc, "--key", join(keys, "enc.jwk"), "--sign-key", join(keys, "sign.jwk")]);
  // The same model under ChaCha20-Poly1305 (no WebCrypto: @noble/ciphers in the page).
  const chachaKeys = join(work, "chacha-keys");
  await ctOk(["keygen", "--out", chachaKeys, "--alg", "chacha20poly1305"]);
  const chacha = join(work, "chacha");
  await ctOk([
    "encrypt",
    join(FIXTURES, "tiny-bert"),
    chacha,
    "--key",
    join(chachaKeys, "enc.jwk"),
    "--sign-key",
    join(chachaKeys, "sign.jwk"),
    "--format-version",
    "1",
  ]);
  const tampered = copyDir(enc, join(work, "tampered"));
  const c = readFileSync(join(tampered, "onnx", "model.onnx.cryptotensors"));
  c[c.length - 100]! ^= 1;
  writeFileSync(join(tampered, "onnx", "model.onnx.cryptotensors"), c);
  // The header's signature altered (the file is otherwise intact), and the file cut short.
  const badHeader = copyDir(enc, join(work, "bad-header"));
  const good = readFileSync(join(enc, "onnx", "model.onnx.cryptotensors"));
  writeFileSync(
    join(badHeader, "onnx", "model.onnx.cryptotensors"),
    tamper(good, (f) => f.metadata.set(SIGNATURE_KEY, flipBase64(f.metadata.get(SIGNATURE_KEY)!, 5))),
  );
  const truncated = copyDir(enc, join(work, "truncated"));
  writeFileSync(join(truncated, "onnx", "model.onnx.cryptotensors"), good.subarray(0, good.length - 1000));
  // The release binds the files around the weights: an altered tokenizer.json or config.json is refused.
  const badTokenizer = copyDir(enc, join(work, "bad-tokenizer"));
  editText(join(badTokenizer, "tokenizer.json"), /"cat": (\d+)/, '"cat": 5');
  const badConfig = copyDir(enc, join(work, "bad-config"));
  editText(join(badConfig, "config.json"), '"layer_norm_eps": 1e-12', '"layer_norm_eps": 1e-3');
  server = await startDemoServer({
    models: {
      "acme/bad-tokenizer": badTokenizer,
      "acme/bad-config": badConfig,
      "acme/secret-bert": enc,
      "acme/plain-bert": join(FIXTURES, "tiny-bert"),
      "acme/tampered-bert": tampered,
      "acme/bad-header": badHeader,
      "acme/truncated-bert": truncated,
      "acme/chacha-bert": chacha,
    },
    jwks: {
      "jwks.json": jwks(join(keys, "enc.jwk"), join(keys, "sign.pub.jwk")),
      "untrusted.json": jwks(join(keys, "enc.jwk"), join(other, "sign.pub.jwk")),
      "chacha.json": jwks(join(chachaKeys, "enc.jwk"), join(chachaKeys, "sign.pub.jwk")),
    },
  });
  browser = (await launchChromium()) as Browser;
  nodeBaseline = await runPipeline({ localModelPath: FIXTURES + "/", model: "tiny-bert" });
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

interface PageResult {
  dims?: number[];
  data?: number[];
  loaded?: { source: string; tensors: number }[] | null;
  error?: { code: string | null; message: string };
}

function openDemo(query: string, context?: BrowserContext): Promise<{ page: Page; result: PageResult; urls: string[] }> {
  return shared.openDemo(context ?? browser, server.url + query);
}

describe("browser: the demo page runs the encrypted model", () => {
  it("shows the same output as the plaintext model, decrypted in the page; screenshot saved", async () => {
    const plain = await openDemo("?model=acme/plain-bert&mode=plain");
    await plain.page.close();
    expect(plain.result.error).toBeUndefined();
    expect(plain.result.dims).toEqual([3, 32]);

    const enc = await openDemo("?model=acme/secret-bert");
    expect(enc.result.error, enc.result.error?.message).toBeUndefined();
    expect(enc.result.dims).toEqual(plain.result.dims);
    expect(enc.result.data).toEqual(plain.result.data); // exact, same browser, same runtime
    expect(enc.result.loaded).toHaveLength(1);
    expect(enc.result.loaded![0]!.tensors).toBe(18);
    // onnxruntime-web (wasm) vs onnxruntime-node (native): the same model within float rounding.
    enc.result.data!.forEach((v, i) => expect(Math.abs(v - nodeBaseline.data![i]!)).toBeLessThan(1e-4));

    // Everything came from the local server: no CDN, and the external data was served from memory.
    const origin = server.url.replace(/\/$/, "");
    expect(enc.urls.filter((u) => !u.startsWith(origin) && !u.startsWith("data:") && !u.startsWith("blob:"))).toEqual([]);
    expect(enc.urls.some((u) => u.endsWith("/onnx/model.onnx.cryptotensors"))).toBe(true);
    expect(enc.urls.some((u) => u.endsWith("/onnx/model.onnx_data"))).toBe(false);

    await expect.poll(() => enc.page.textContent("#status")).toBe("done");
    const cells = await enc.page.$$eval("#out tbody td.vec", (tds) => tds.map((td) => td.textContent ?? ""));
    expect(cells).toHaveLength(3);
    expect(cells[0]).toContain(enc.result.data![0]!.toFixed(5));
    mkdirSync(OUT, { recursive: true });
    const shot = join(OUT, "transformersjs-browser.png");
    await enc.page.screenshot({ path: shot, fullPage: true });
    expect(readFileSync(shot).subarray(1, 4).toString()).toBe("PNG");
    await enc.page.close();
  });

  it("ChaCha20-Poly1305, format v1 (monolithic): same output", async () => {
    const plain = await openDemo("?model=acme/plain-bert&mode=plain");
    await plain.page.close();
    const c = await openDemo("?model=acme/chacha-bert&keys=/keys/chacha.json");
    expect(c.result.error, c.result.error?.message).toBeUndefined();
    expect(c.result.data).toEqual(plain.result.data);
    await c.page.close();
  });

  it("refuses a tampered model (ERR_CT_DECRYPTION_FAILED) and an untrusted signer (ERR_CT_UNTRUSTED_SIGNER)", async () => {
    const t = await openDemo("?model=acme/tampered-bert");
    expect(t.result.data).toBeUndefined();
    expect(t.result.error?.code, t.result.error?.message).toBe("ERR_CT_DECRYPTION_FAILED");
    expect(await t.page.textContent("#status")).toMatch(/ERR_CT_DECRYPTION_FAILED/);
    await t.page.close();
    const u = await openDemo("?model=acme/secret-bert&keys=/keys/untrusted.json");
    expect(u.result.error?.code, u.result.error?.message).toBe("ERR_CT_UNTRUSTED_SIGNER");
    await u.page.close();
  });

  it("refuses an altered tokenizer.json and an altered config.json (the signed release): ERR_CT_INTEGRITY naming the file", async () => {
    for (const [model, file] of [
      ["acme/bad-tokenizer", "tokenizer.json"],
      ["acme/bad-config", "config.json"],
    ] as const) {
      const r = await openDemo(`?model=${model}`);
      expect(r.result.data).toBeUndefined();
      expect(r.result.error?.code, r.result.error?.message).toBe("ERR_CT_INTEGRITY");
      expect(r.result.error?.message).toMatch(new RegExp(`^${file.replace(".", "\\.")} was modified: it does not match release \\d+ of `));
      await r.page.close();
    }
  });

  it("refuses the plaintext model when the hook is installed (downgrade): ERR_CT_NOT_CONFIDENTIAL", async () => {
    const p = await openDemo("?model=acme/plain-bert");
    expect(p.result.error?.code, p.result.error?.message).toBe("ERR_CT_NOT_CONFIDENTIAL");
    await p.page.close();
  });
});

describe("browser: the encrypted container is cached (Cache Storage), never the plaintext", () => {
  const CACHE = CONTAINER_CACHE as string;
  const containerUrl = () => `${server.url}hub/acme/secret-bert/resolve/main/onnx/model.onnx.cryptotensors`;
  /** Every entry of every cache of the page's origin: URL → bytes (base64). */
  const cacheStorage = (page: Page) =>
    page.evaluate(async () => {
      const out: Record<string, string> = {};
      for (const name of await caches.keys()) {
        const cache = await caches.open(name);
        for (const req of await cache.keys()) {
          const bytes = new Uint8Array(await (await cache.match(req))!.arrayBuffer());
          let bin = "";
          for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
          out[`${name} ${req.url}`] = btoa(bin);
        }
      }
      return out;
    });
  const waitForCached = (page: Page): Promise<unknown> => shared.waitForCached(page, CACHE, containerUrl());

  it("a second page load downloads no container; Cache Storage holds the encrypted file byte for byte and no plaintext weight", async () => {
    const context = await browser.newContext();
    try {
      const first = await openDemo("?model=acme/secret-bert", context);
      expect(first.result.error, first.result.error?.message).toBeUndefined();
      expect(first.urls.filter((u) => u.endsWith("/onnx/model.onnx.cryptotensors"))).toHaveLength(1);
      await waitForCached(first.page);
      await first.page.close();

      const second = await openDemo("?model=acme/secret-bert", context);
      expect(second.result.error, second.result.error?.message).toBeUndefined();
      expect(second.result.data).toEqual(first.result.data);
      expect(second.result.loaded).toHaveLength(1); // verified and decrypted again, from the cached ciphertext
      expect(second.urls.filter((u) => u.includes(".cryptotensors"))).toEqual([]);

      const stored = await cacheStorage(second.page);
      await second.page.close();
      expect(Object.keys(stored)).toEqual([`${CACHE} ${containerUrl()}`]);
      const cached = Buffer.from(stored[`${CACHE} ${containerUrl()}`]!, "base64");
      expect(cached.equals(readFileSync(join(encDir, "onnx", "model.onnx.cryptotensors")))).toBe(true);
      const needles = weightNeedles(join(FIXTURES, "tiny-bert-extdata"));
      expect(needles.length).toBeGreaterThan(3);
      for (const bytes of Object.values(stored)) for (const n of needles) expect(Buffer.from(bytes, "base64").includes(n)).toBe(false);
    } finally {
      await context.close();
    }
  });

  it("a tampered container (a tensor's bytes, the header) or a truncated one is refused with its typed error and not left in Cache Storage", async () => {
    for (const [model, code] of [
      ["acme/tampered-bert", "ERR_CT_DECRYPTION_FAILED"],
      ["acme/bad-header", "ERR_CT_SIGNATURE_INVALID"],
      ["acme/truncated-bert", "ERR_CT_FORMAT"],
    ] as const) {
      const context = await browser.newContext();
      try {
        const r = await openDemo(`?model=${model}`, context);
        expect(r.result.data, model).toBeUndefined();
        expect(r.result.error?.code, `${model}: ${r.result.error?.message}`).toBe(code);
        expect(
          r.urls.filter((u) => u.endsWith("/onnx/model.onnx.cryptotensors")),
          model,
        ).toHaveLength(1);
        // The refusal is reported once the copy being written was failed and deleted: nothing is left.
        expect(await cacheStorage(r.page), model).toEqual({});
        await r.page.close();
      } finally {
        await context.close();
      }
    }
  });

  it("a damaged cached container is dropped and the file fetched again: same output, the good file cached", async () => {
    const context = await browser.newContext();
    try {
      const first = await openDemo("?model=acme/secret-bert", context);
      await waitForCached(first.page);
      await first.page.evaluate(
        async ([name, url]) => {
          const cache = await caches.open(name!);
          const bytes = new Uint8Array(await (await cache.match(url!))!.arrayBuffer());
          bytes[bytes.length - 100]! ^= 1;
          await cache.put(url!, new Response(bytes));
        },
        [CACHE, containerUrl()] as const,
      );
      await first.page.close();
      const second = await openDemo("?model=acme/secret-bert", context);
      expect(second.result.error, second.result.error?.message).toBeUndefined();
      expect(second.result.data).toEqual(first.result.data);
      expect(second.urls.filter((u) => u.endsWith("/onnx/model.onnx.cryptotensors"))).toHaveLength(1);
      await waitForCached(second.page);
      const stored = await cacheStorage(second.page);
      await second.page.close();
      expect(
        Buffer.from(stored[`${CACHE} ${containerUrl()}`]!, "base64").equals(readFileSync(join(encDir, "onnx", "model.onnx.cryptotensors"))),
      ).toBe(true);
    } finally {
      await context.close();
    }
  });
});

describe("browser: the shared test vectors", () => {
  it("the browser build of the in-memory reader gives every case's expected verdict (digests or error code)", async () => {
    const vectors = join(REPO_ROOT, "test", "vectors");
    const manifest = JSON.parse(readFileSync(join(vectors, "manifest.json"), "utf8")) as Manifest;
    const bundle = await build({
      entryPoints: [join(REPO_ROOT, "test", "transformersjs", "vectors-entry.ts")],
      bundle: true,
      write: false,
      format: "iife",
      globalName: "ctVectors",
      platform: "browser",
      target: "es2022",
      plugins: [ctensorsWebPlugin],
      logLevel: "warning",
    });
    const files: Record<string, string> = {};
    const texts: Record<string, string> = {};
    for (const c of manifest.cases) {
      files[c.file] = readFileSync(join(vectors, c.file)).toString("base64");
      for (const k of [...c.keys, ...c.trust]) texts[k] = readFileSync(join(vectors, k), "utf8");
    }
    const page = await browser.newPage();
    // A page of the local server: a secure context (127.0.0.1), so WebCrypto is available.
    await page.goto(server.url + "vectors");
    await page.addScriptTag({ content: bundle.outputFiles[0]!.text });
    const verdicts = await page.evaluate(
      ([m, f, t]) =>
        (globalThis as unknown as { ctVectors: { replayAll(...a: unknown[]): Promise<unknown> } }).ctVectors.replayAll(m, f, t),
      [manifest, files, texts] as const,
    );
    await page.close();
    expect(verdicts).toEqual(Object.fromEntries(manifest.cases.map((c) => [c.name, expectedVerdict(c)])));
  });
});
