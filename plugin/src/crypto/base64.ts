// Strict base64 (cryptotensors-format.md §2.6): the reference uses the standard alphabet with
// required, canonical padding and rejects non-canonical trailing bits. Node's Buffer decoder is
// lenient (skips junk, accepts missing padding), so the input is validated first.

const STANDARD = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const URLSAFE = /^[A-Za-z0-9_-]*$/;

/** Decodes canonical padded standard base64; undefined when malformed. */
export function decodeBase64(text: string): Uint8Array | undefined {
  if (!STANDARD.test(text)) return undefined;
  const bytes = Buffer.from(text, "base64");
  // Canonical: re-encoding must give the same text (rejects non-zero trailing bits).
  if (bytes.toString("base64") !== text) return undefined;
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}

export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

/** Decodes unpadded base64url (RFC 7515 §2, as JOSE JWKs use); undefined when malformed. */
export function decodeBase64Url(text: string): Uint8Array | undefined {
  if (!URLSAFE.test(text) || text.length % 4 === 1) return undefined;
  const bytes = Buffer.from(text, "base64url");
  if (bytes.toString("base64url") !== text) return undefined;
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}

export function encodeBase64Url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64url");
}
