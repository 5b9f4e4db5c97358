// Strict base64 (docs/format.md §3.6): the reference uses the standard alphabet with
// required, canonical padding and rejects non-canonical trailing bits. Node's Buffer decoder is
// lenient (skips junk, accepts missing padding), so the input is validated first.

// Browsers have no Buffer: atob/btoa there (same results; Node keeps using Buffer).
const hasBuffer = typeof Buffer !== "undefined";

function bytesToBinary(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return s;
}

function toStd(bytes: Uint8Array): string {
  return hasBuffer ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64") : btoa(bytesToBinary(bytes));
}

function fromStd(text: string): Uint8Array {
  if (hasBuffer) {
    const b = Buffer.from(text, "base64");
    return new Uint8Array(b.buffer, b.byteOffset, b.length);
  }
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

const toUrl = (bytes: Uint8Array): string => toStd(bytes).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");

function fromUrl(text: string): Uint8Array {
  const std = text.replaceAll("-", "+").replaceAll("_", "/");
  return fromStd(std + "=".repeat((4 - (std.length % 4)) % 4));
}

const STANDARD = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const URLSAFE = /^[A-Za-z0-9_-]*$/;

/** Decodes canonical padded standard base64; undefined when malformed. */
export function decodeBase64(text: string): Uint8Array | undefined {
  if (!STANDARD.test(text)) return undefined;
  const bytes = fromStd(text);
  // Canonical: re-encoding must give the same text (rejects non-zero trailing bits).
  if (toStd(bytes) !== text) return undefined;
  return bytes;
}

export function encodeBase64(bytes: Uint8Array): string {
  return toStd(bytes);
}

/** Decodes unpadded base64url (RFC 7515 §2, as JOSE JWKs use); undefined when malformed. */
export function decodeBase64Url(text: string): Uint8Array | undefined {
  if (!URLSAFE.test(text) || text.length % 4 === 1) return undefined;
  const bytes = fromUrl(text);
  if (toUrl(bytes) !== text) return undefined;
  return bytes;
}

export function encodeBase64Url(bytes: Uint8Array): string {
  return toUrl(bytes);
}
