// Where tensors go in shared memory: batches of tensors packed in order at 64-byte aligned offsets
// (enough for every dtype and for vectorised copies). Pure arithmetic, no I/O.

export const ALIGN_BYTES = 64;

export function alignUp(n: number): number {
  return Math.ceil(n / ALIGN_BYTES) * ALIGN_BYTES;
}

export interface Placement<T> {
  item: T;
  offset: number;
  byteSize: number;
}

export interface Batch<T> {
  placements: Placement<T>[];
  /** End of the last tensor (not aligned). */
  end: number;
}

/**
 * Packs items in order into batches of at most `maxBytes` (a new batch starts when the next item
 * would cross it). An item larger than `maxBytes` gets a batch of its own.
 */
export function packBatches<T>(items: readonly T[], sizeOf: (item: T) => number, maxBytes: number): Batch<T>[] {
  const batches: Batch<T>[] = [];
  let current: Batch<T> | null = null;
  for (const item of items) {
    const byteSize = sizeOf(item);
    let offset = current ? alignUp(current.end) : 0;
    if (!current || (current.placements.length > 0 && offset + byteSize > maxBytes)) {
      current = { placements: [], end: 0 };
      batches.push(current);
      offset = 0;
    }
    current.placements.push({ item, offset, byteSize });
    current.end = offset + byteSize;
  }
  return batches;
}

/**
 * RESIDENT regions hold at most this much (or the server's residentRegionBytes when smaller; a larger
 * tensor gets a region of its own): the sidecar allocates one region while it fills the one before,
 * and the client maps each region as soon as it is filled, so more, smaller regions overlap those
 * steps (bench/RESULTS.md).
 */
export const RESIDENT_PIPELINE_BYTES = 256 * 1024 * 1024;

export const DEFAULT_WINDOW_BYTES = 256 * 1024 * 1024;
export const DEFAULT_WINDOW_COUNT = 2;
export const MIN_WINDOW_BYTES = 1024 * 1024;
export const MAX_WINDOW_COUNT = 64;

/**
 * The streaming region size: the requested size (default 256 MiB), at least 1 MiB and the largest
 * tensor, but never more than the whole request needs (all tensors packed together).
 */
export function streamingWindowBytes(requested: number, sizes: readonly number[], defaultBytes = DEFAULT_WINDOW_BYTES): number {
  const largest = sizes.reduce((m, s) => Math.max(m, s), 0);
  const needed = packBatches(sizes, (s) => s, Number.MAX_SAFE_INTEGER)[0]?.end ?? 0;
  const want = Math.max(requested > 0 ? requested : defaultBytes, MIN_WINDOW_BYTES, largest);
  return alignUp(Math.max(Math.min(want, needed), largest, ALIGN_BYTES));
}

export function streamingWindowCount(requested: number, defaultCount = DEFAULT_WINDOW_COUNT): number {
  return Math.min(requested > 0 ? requested : defaultCount, MAX_WINDOW_COUNT);
}

export interface Window {
  bytes: number;
  count: number;
}

/**
 * Fits a streaming window (`count` regions of `bytes` bytes, from streamingWindowBytes/Count) into
 * `free` bytes of shared memory allocated in blocks of `blockBytes`: the regions get smaller first
 * (never below the largest tensor), then fewer. Returns null when not even one region holding the
 * largest tensor fits.
 */
export function fitStreamingWindow(want: Window, largest: number, free: number, blockBytes: number): Window | null {
  const blocks = (n: number) => Math.ceil(n / blockBytes) * blockBytes;
  if (want.count * blocks(want.bytes) <= free) return want;
  const floor = alignUp(Math.max(largest, ALIGN_BYTES));
  const perRegion = Math.floor(free / want.count / blockBytes) * blockBytes;
  if (perRegion >= floor) return { bytes: perRegion, count: want.count };
  const count = Math.min(want.count, Math.floor(free / blocks(floor)));
  return count >= 1 ? { bytes: floor, count } : null;
}

/** The shared memory `regionSizes` take once written, in whole blocks. */
export function blocksNeeded(regionSizes: readonly number[], blockBytes: number): number {
  return regionSizes.reduce((s, n) => s + Math.ceil(n / blockBytes) * blockBytes, 0);
}
