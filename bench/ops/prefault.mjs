// Child: touches GIB GiB of anonymous memory once, then exits (memory returns to the kernel).
// On a VM whose RAM the host backs lazily (Firecracker, balloons), the first touch of a guest page is
// several times slower than later ones; touching once up front keeps that cost out of the measured
// operations (page-cache pages for new files come from the same pool). Reports the touch rate.
// usage: node bench/ops/prefault.mjs GIB
import { args, begin, finish } from "./_common.mjs";

const gib = Number(args[0]);
const PIECE = 512 * 1024 * 1024;
const held = [];
const probe = begin();
for (let done = 0; done < gib * 2 ** 30; done += PIECE) {
  const b = Buffer.allocUnsafe(PIECE);
  b.fill(1);
  held.push(b);
}
finish(probe, { bytes: gib * 2 ** 30, pieces: held.length });
