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

/** A 200 Response with the bytes of a decrypted model file. */
export function fileResponse(bytes: Uint8Array): Response {
  return new Response(bytes as unknown as ConstructorParameters<typeof Response>[0], {
    status: 200,
    headers: { "content-length": String(bytes.length), "content-type": "application/octet-stream" },
  });
}
