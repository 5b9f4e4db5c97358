// Headless Chromium on the demo page (demo/browser/, served by scripts/browser-demo.mjs): shared by the
// browser test (test/transformersjs/browser.test.ts) and the bench's browser op (bench/ops/tjs-browser.mjs).
// Debian's `chromium` driven by playwright-core, never a downloaded browser.
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

export const CHROMIUM = process.env.CTENSORS_CHROMIUM ?? "/usr/bin/chromium";
/** The hook's Cache Storage cache of encrypted containers (plugin/src/transformers/container-cache.ts). */
export const CONTAINER_CACHE = "ctensors-encrypted-containers-v1";

const LAUNCH = { executablePath: CHROMIUM, args: ["--no-sandbox"] };
export const launchChromium = () => chromium.launch(LAUNCH);
/**
 * A browser with an on-disk profile in `userDataDir` (one context): its Cache Storage has the quota of a
 * real profile; a context of launchChromium() is in memory, with a small quota (a few hundred MB of
 * entries are not kept).
 */
export const launchChromiumProfile = (userDataDir) => chromium.launchPersistentContext(userDataDir, LAUNCH);

/** A JWK set (the text the demo page fetches) of the JWK files given. */
export const jwksOf = (...files) => JSON.stringify({ keys: files.map((f) => JSON.parse(readFileSync(f, "utf8"))) });

/**
 * Opens `url` (the demo page with its query) in a new page of `target` (a browser or a context) and waits
 * for the page's `window.__result`. Returns the page, the result, every URL the page requested, and
 * `resultAt`: milliseconds from the start of the navigation to the moment the page set its result
 * (recorded in the page by a setter, not by polling). `beforeGoto(page)` runs before the navigation.
 */
export async function openDemo(target, url, { timeout = 90_000, beforeGoto } = {}) {
  const page = await target.newPage({ viewport: { width: 1100, height: 560 } });
  const urls = [];
  page.on("request", (r) => urls.push(r.url()));
  await page.addInitScript(() => {
    let value;
    Object.defineProperty(window, "__result", {
      configurable: true,
      get: () => value,
      set: (v) => {
        window.__resultAt = performance.now();
        value = v;
      },
    });
  });
  if (beforeGoto) await beforeGoto(page);
  await page.goto(url);
  await page.waitForFunction(() => window.__result, null, { timeout });
  const { result, resultAt } = await page.evaluate(() => ({ result: window.__result, resultAt: window.__resultAt }));
  return { page, result, urls, resultAt };
}

/** Waits until Cache Storage of the page's origin holds an entry in cache `name` whose URL ends with `suffix`. */
export function waitForCached(page, name, suffix, timeout = 30_000) {
  return page.waitForFunction(
    async ([n, s]) => {
      if (!(await caches.has(n))) return false;
      return (await (await caches.open(n)).keys()).some((r) => r.url.endsWith(s));
    },
    [name, suffix],
    { timeout },
  );
}
