// A fetched container on its way to the decryption and, at the same time, to the container cache
// (container-cache.ts): one read of the network body feeds both, and each chunk is let go once both have
// taken it. Unlike ReadableStream.tee(), whose faster branch makes the slower one queue every chunk (the
// whole file, when the decryption waits for the graph while Cache Storage keeps reading), the copy for the
// cache holds at most COPY_HIGH_WATER_BYTES ahead of the cache and the reading waits for it: memory stays
// bounded whichever side is slower. The copy is stored only on commit() (every tensor decrypted, every
// check passed); abort() fails it, so Cache Storage stores nothing, and deletes the entry to be sure.

import type { ContainerCache } from "./container-cache.js";

/** How far the copy for the cache may run ahead of Cache Storage's writing. */
export const COPY_HIGH_WATER_BYTES = 4 << 20;

export interface CacheTee {
  /** The bytes, for the decryption: read from the source only as this is read. */
  readonly body: ReadableStream<Uint8Array>;
  /** Lets the copy be stored (call once the body was read to its end and everything checked). */
  commit(): void;
  /** Stores nothing (the copy fails, the entry is deleted); resolves once Cache Storage has settled. */
  abort(reason: unknown): Promise<void>;
}

/** `highWaterBytes`: how far the copy may run ahead of the cache (COPY_HIGH_WATER_BYTES). */
export function teeToCache(
  source: ReadableStream<Uint8Array>,
  cache: ContainerCache,
  url: string,
  highWaterBytes = COPY_HIGH_WATER_BYTES,
): CacheTee {
  let copyController!: ReadableStreamDefaultController<Uint8Array>;
  let copying = true;
  let room: (() => void) | undefined;
  const wake = () => {
    room?.();
    room = undefined;
  };
  const copy = new ReadableStream<Uint8Array>(
    {
      start(c) {
        copyController = c;
      },
      pull: wake,
      cancel() {
        copying = false;
        wake();
      },
    },
    { highWaterMark: highWaterBytes, size: (chunk) => chunk.byteLength },
  );
  const stored = cache.put(url, copy).then(
    () => true,
    () => {
      copying = false; // quota exceeded, storage off…: the load goes on without a copy
      wake();
      return false;
    },
  );
  const reader = source.getReader();
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(c) {
        const r = await reader.read();
        if (r.done) {
          c.close(); // the copy is closed by commit() only
          return;
        }
        c.enqueue(r.value);
        if (!copying) return;
        copyController.enqueue(r.value);
        while (copying && (copyController.desiredSize ?? 1) <= 0) await new Promise<void>((resolve) => (room = resolve));
      },
      cancel: (reason) => reader.cancel(reason),
    },
    { highWaterMark: 0 },
  );
  let settled = false;
  return {
    body,
    commit() {
      if (settled) return;
      settled = true;
      if (copying) copyController.close();
    },
    async abort(reason) {
      if (settled) return;
      settled = true;
      if (copying) {
        copying = false;
        copyController.error(reason);
      }
      await stored;
      await cache.delete(url).catch(() => {});
    },
  };
}
