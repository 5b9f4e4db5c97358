// The arithmetic of fitting loads into shared memory (load-plan.ts fitStreamingWindow, blocksNeeded)
// and the sizing error's text (shm/capacity.ts). The real small /dev/shm is in small-shm.test.ts.

import { describe, expect, it } from "vitest";
import { blocksNeeded, fitStreamingWindow } from "../../src/sidecar/load-plan.js";
import { isNoSpace, shmTooSmall, suggestedShmBytes } from "../../src/sidecar/shm/capacity.js";

const MiB = 1024 * 1024;
const PAGE = 4096;

describe("fitStreamingWindow", () => {
  it("keeps a window that fits", () => {
    expect(fitStreamingWindow({ bytes: 16 * MiB, count: 2 }, 8 * MiB, 64 * MiB, PAGE)).toEqual({ bytes: 16 * MiB, count: 2 });
  });
  it("shrinks the regions first, to whole pages", () => {
    expect(fitStreamingWindow({ bytes: 256 * MiB, count: 2 }, 8 * MiB, 64 * MiB - 100, PAGE)).toEqual({ bytes: 32 * MiB - PAGE, count: 2 });
  });
  it("then uses fewer regions of the largest tensor's size, never smaller", () => {
    expect(fitStreamingWindow({ bytes: 256 * MiB, count: 4 }, 20 * MiB, 64 * MiB, PAGE)).toEqual({ bytes: 20 * MiB, count: 3 });
    expect(fitStreamingWindow({ bytes: 256 * MiB, count: 2 }, 40 * MiB, 64 * MiB, PAGE)).toEqual({ bytes: 40 * MiB, count: 1 });
  });
  it("gives up when the largest tensor cannot fit once", () => {
    expect(fitStreamingWindow({ bytes: 256 * MiB, count: 2 }, 8 * MiB, 8 * MiB - 1, PAGE)).toBeNull();
  });
  it("counts regions in whole blocks", () => {
    expect(blocksNeeded([1, PAGE, PAGE + 1], PAGE)).toBe(4 * PAGE);
  });
});

describe("the sizing error", () => {
  it("states needed and free bytes and every remedy; RESIDENT also suggests streaming when it fits", () => {
    const err = shmTooSmall({ dir: "/dev/shm", mode: "resident", needed: 80 * MiB, free: 60 * MiB, streamingNeeds: 8 * MiB });
    expect(err.code).toBe("ERR_CT_IO");
    expect(err.message).toContain(`needs ${80 * MiB} bytes (80.0 MiB) in /dev/shm, ${60 * MiB} bytes (60.0 MiB) are free`);
    expect(err.message).toContain(`--shm-size=${suggestedShmBytes(80 * MiB) / MiB}m`);
    expect(err.message).toContain("--ipc=host");
    expect(err.message).toContain(`medium: Memory and sizeLimit: ${suggestedShmBytes(80 * MiB) / MiB}Mi`);
    expect(err.message).toContain("streaming mode (it needs 8.0 MiB at least, which fits)");
    expect(isNoSpace(err)).toBe(true);
  });
  it("suggests room above the need", () => {
    expect(suggestedShmBytes(80 * MiB)).toBe(164 * MiB);
  });
  it("isNoSpace follows the cause chain and nothing else", () => {
    expect(isNoSpace(new Error("x", { cause: new Error("y", { cause: Object.assign(new Error("z"), { code: "EDQUOT" }) }) }))).toBe(true);
    expect(isNoSpace(Object.assign(new Error("z"), { code: "EIO" }))).toBe(false);
    expect(isNoSpace(null)).toBe(false);
  });
});
