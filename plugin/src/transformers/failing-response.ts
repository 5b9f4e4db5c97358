// The answer to a refused model. transformers.js swallows exceptions thrown by the cache's `match`, so
// the hook answers with a Response whose body fails with the typed error: loading then rejects with it.

/**
 * A Response whose body fails with `err`: transformers.js reads the body, so its load rejects with `err`.
 * The body methods are overridden because browsers turn a failed body stream into a bare
 * "TypeError: Failed to fetch", which would hide the typed error.
 */
export function failingResponse(err: unknown): Response {
  const res = new Response(null, { status: 200 });
  const reject = { value: () => Promise.reject(err) };
  return Object.defineProperties(res, {
    body: {
      get: () =>
        new ReadableStream({
          start(controller) {
            controller.error(err);
          },
        }),
    },
    arrayBuffer: reject,
    blob: reject,
    text: reject,
    json: reject,
    bytes: reject,
  });
}

/**
 * A 200 Response that hands the bytes of a decrypted model file to transformers.js without copying them:
 * `arrayBuffer()` returns the buffer the bytes were decrypted into (a `new Response(bytes)` would copy them,
 * and its `arrayBuffer()` once more). `onTaken` runs when the body is read, so the hook can let go of them.
 */
export function fileResponse(bytes: Uint8Array, onTaken: () => void = () => {}): Response {
  const res = new Response(null, {
    status: 200,
    headers: { "content-length": String(bytes.length), "content-type": "application/octet-stream" },
  });
  let taken = false;
  const take = (): Uint8Array => {
    if (taken) throw new TypeError("Body has already been consumed.");
    taken = true;
    onTaken();
    return bytes;
  };
  const whole = (b: Uint8Array): ArrayBuffer =>
    (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b.buffer : b.slice().buffer) as ArrayBuffer;
  return Object.defineProperties(res, {
    body: {
      get: () =>
        new ReadableStream({
          start(controller) {
            controller.enqueue(take());
            controller.close();
          },
        }),
    },
    bodyUsed: { get: () => taken },
    arrayBuffer: { value: async () => whole(take()) },
    bytes: { value: async () => take() },
    blob: { value: async () => new Blob([whole(take())]) },
    text: { value: async () => new TextDecoder().decode(take()) },
    json: { value: async () => JSON.parse(new TextDecoder().decode(take())) },
  });
}
