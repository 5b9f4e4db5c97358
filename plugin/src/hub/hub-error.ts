// Hub failures become CryptoTensorsError("ERR_CT_HUB") with a message that says what was asked of
// which Hub and what to do. The access token never appears in a message.

import { HubApiError } from "@huggingface/hub";
import { CryptoTensorsError } from "../errors.js";

const NO_TOKEN = "no token was given, and a private or gated repo needs one: set HF_TOKEN, pass --token, or run `hf auth login`";

/**
 * `where` is the Hub's URL, or the settings of the call: with them the message can say whether a
 * token was given at all (a refusal then reads "no token was given", not "the Hub refused the token").
 */
export function hubError(err: unknown, what: string, where: string | { hubUrl: string; accessToken?: string }): CryptoTensorsError {
  if (err instanceof CryptoTensorsError) return err;
  const hubUrl = typeof where === "string" ? where : where.hubUrl;
  const noToken = typeof where !== "string" && !where.accessToken;
  // @huggingface/hub checks the token's form before any request (a TypeError with this text).
  if (err instanceof TypeError && /access token must start with 'hf_'/.test(err.message)) {
    return new CryptoTensorsError(
      "ERR_CT_HUB",
      `${what} on ${hubUrl}: the token is not a Hugging Face access token (those start with "hf_"): check HF_TOKEN or --token`,
      { cause: err, option: "token" },
    );
  }
  if (err instanceof HubApiError) {
    const hint =
      err.statusCode === 401 || err.statusCode === 403
        ? noToken
          ? ` (${NO_TOKEN})`
          : " (the Hub refused the token: give a token with access to this repo)"
        : err.statusCode === 404
          ? noToken
            ? ` (not found: check the repo id, the revision and the file; ${NO_TOKEN})`
            : " (not found: check the repo id, the revision and the file, and that the token can see a private repo)"
          : "";
    const detail = err.message.replace(/\. URL: .*$/s, "");
    return new CryptoTensorsError("ERR_CT_HUB", `${what} on ${hubUrl} failed: HTTP ${err.statusCode}: ${detail}${hint}`, {
      cause: err,
      option: hint && !noToken ? "token" : undefined,
    }); // (the no-token hint says how already)
  }
  const cause = err as NodeJS.ErrnoException & { cause?: { code?: string } };
  const code = cause?.cause?.code ?? cause?.code;
  const detail = code ? `${code}` : String((err as Error)?.message ?? err);
  return new CryptoTensorsError(
    "ERR_CT_HUB",
    `${what} on ${hubUrl} failed: ${detail} (is the Hub reachable? HF_HUB_OFFLINE=1 uses the cache only)`,
    { cause: err, option: "hubUrl" },
  );
}

/** The HTTP status of a Hub error, if it is one. */
export function hubStatus(err: unknown): number | undefined {
  return err instanceof HubApiError ? err.statusCode : undefined;
}
