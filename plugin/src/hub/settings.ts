// Where the Hub is, who we are to it, and where its files are cached: the same environment variables
// as the Hub's own Python and JavaScript clients, so both share one cache.
//   endpoint: option → HF_ENDPOINT → https://huggingface.co
//   token:    option → HF_TOKEN → HUGGING_FACE_HUB_TOKEN → the token file ($HF_TOKEN_PATH, else $HF_HOME/token,
//             else ~/.cache/huggingface/token)
//   cache:    option → HF_HUB_CACHE → HUGGINGFACE_HUB_CACHE → $HF_HOME/hub → $XDG_CACHE_HOME/huggingface/hub
//             → ~/.cache/huggingface/hub
//   offline:  HF_HUB_OFFLINE=1 (also true/yes/on): the cache only, no network call.

import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { CryptoTensorsError } from "../errors.js";
import { quote } from "../format/printable.js";

export const DEFAULT_HUB_URL = "https://huggingface.co";

export interface HubOptions {
  /** The Hub's base URL (`--hub-url`). */
  hubUrl?: string;
  /** An access token (`--token`). */
  token?: string;
  /** The cache folder (`--cache-dir`). */
  cacheDir?: string;
  /** Cache only (`HF_HUB_OFFLINE=1`). */
  offline?: boolean;
}

export interface HubSettings {
  hubUrl: string;
  /** undefined: anonymous. */
  accessToken: string | undefined;
  cacheDir: string;
  offline: boolean;
}

function truthy(value: string | undefined): boolean {
  return value !== undefined && ["1", "true", "yes", "on"].includes(value.trim().toLowerCase());
}

function hfHome(env: NodeJS.ProcessEnv): string {
  return env.HF_HOME || join(env.XDG_CACHE_HOME || join(homedir(), ".cache"), "huggingface");
}

function tokenFromFile(env: NodeJS.ProcessEnv): string | undefined {
  const path = env.HF_TOKEN_PATH || join(hfHome(env), "token");
  try {
    const token = readFileSync(path, "utf8").trim();
    return token || undefined;
  } catch {
    return undefined;
  }
}

export function hubSettings(options: HubOptions = {}, env: NodeJS.ProcessEnv = process.env): HubSettings {
  const hubUrl = (options.hubUrl || env.HF_ENDPOINT || DEFAULT_HUB_URL).replace(/\/+$/, "");
  try {
    const url = new URL(hubUrl);
    if (url.protocol !== "https:" && url.protocol !== "http:") throw new Error("not http(s)");
  } catch {
    throw new CryptoTensorsError("ERR_CT_USAGE", `the Hub URL ${quote(hubUrl)} is not an http(s) URL`, { option: "hubUrl" });
  }
  const accessToken = options.token || env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN || tokenFromFile(env);
  const cacheDir = options.cacheDir || env.HF_HUB_CACHE || env.HUGGINGFACE_HUB_CACHE || join(hfHome(env), "hub");
  return { hubUrl, accessToken: accessToken || undefined, cacheDir, offline: options.offline ?? truthy(env.HF_HUB_OFFLINE) };
}

/** The credentials argument of @huggingface/hub calls (which insists on tokens starting with `hf_`). */
export function credentialsOf(settings: HubSettings): { hubUrl: string; accessToken?: string } {
  return settings.accessToken ? { hubUrl: settings.hubUrl, accessToken: settings.accessToken } : { hubUrl: settings.hubUrl };
}
