// What a fuzz target is: an arbitrary producing inputs (bytes, so any input can be stored in the
// regression corpus and replayed), and a run that throws a Finding when the oracle is violated and
// otherwise returns a short outcome label (counted per target in the results).

import type fc from "fast-check";

export interface FuzzTarget {
  name: string;
  /** One line for docs and reports. */
  description: string;
  input: fc.Arbitrary<Uint8Array>;
  /** Inputs always run first (seeds), besides the regression corpus. */
  seeds?: () => Uint8Array[];
  setup?: () => Promise<void>;
  teardown?: () => Promise<void>;
  run: (input: Uint8Array) => Promise<string>;
}
