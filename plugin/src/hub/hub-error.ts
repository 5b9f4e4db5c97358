// Hub failures become CryptoTensorsError("ERR_CT_HUB") with a message that says what was asked of
// which Hub and what to do. The access token never appears in a message.

import { HubApiError } from "@huggingface/hub";
import { CryptoTensorsError } from "../errors.js";

export function hubError(err: unknown, what: string, hubUrl: string): CryptoTensorsError {
  if (err instanceof CryptoTensorsError) return err;
  if (err instanceof HubApiError) {
    const hint =
      err.statusCode === 401 || err.statusCode === 403
        ? " (the Hub refused the token: give a token with access to this repo)"
        : err.statusCode === 404
          ? " (not found: check the repo id, the revision and the file, and that the token can see a private repo)"
          : "";
    const detail = err.message.replace(/\. URL: .*$/s, "");
    return new CryptoTensorsError("ERR_CT_HUB", `${what} on ${hubUrl} failed: HTTP ${err.statusCode}: ${detail}${hint}`, { cause: err, option: hint ? "token" : undefined });
  }
  const cause = err as NodeJS.ErrnoException & { cause?: { code?: string } };
  const code = cause?.cause?.code ?? cause?.code;
  const detail = code ? `${code}` : String((err as Error)?.message ?? err);
  return new CryptoTensorsError("ERR_CT_HUB", `${what} on ${hubUrl} failed: ${detail} (is the Hub reachable? HF_HUB_OFFLINE=1 uses the cache only)`, { cause: err, option: "hubUrl" });
}

/** The HTTP status of a Hub error, if it is one. */
export function hubStatus(err: unknown): number | undefined {
  return err instanceof HubApiError ? err.statusCode : undefined;
}
