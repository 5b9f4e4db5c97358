// safetensors dtypes (docs/format.md §1.4): header spelling, bit size, and the enum order the
// reference writer sorts by (§1.5).

/** In the reference's `enum Dtype` order; the writer sorts tensors by this order, descending. */
export const DTYPES = [
  "BOOL",
  "F4",
  "F6_E2M3",
  "F6_E3M2",
  "U8",
  "I8",
  "F8_E5M2",
  "F8_E4M3",
  "F8_E8M0",
  "I16",
  "U16",
  "F16",
  "BF16",
  "I32",
  "U32",
  "F32",
  "C64",
  "F64",
  "I64",
  "U64",
] as const;

export type Dtype = (typeof DTYPES)[number];

const BITS: Record<Dtype, number> = {
  BOOL: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  F64: 64,
  I64: 64,
  U64: 64,
};

const RANK = new Map<string, number>(DTYPES.map((d, i) => [d, i]));

export function isDtype(value: string): value is Dtype {
  return RANK.has(value);
}

export function dtypeBits(dtype: Dtype): number {
  return BITS[dtype];
}

/** Position of the dtype in the reference's enum (for the writer's sort). */
export function dtypeRank(dtype: Dtype): number {
  return RANK.get(dtype)!;
}

/**
 * Byte length of a tensor, or undefined when elements × bits is not a whole number of bytes.
 * Uses BigInt so that hostile shapes cannot overflow silently.
 */
export function tensorByteLength(dtype: Dtype, shape: readonly number[]): bigint | undefined {
  let elements = 1n;
  for (const dim of shape) elements *= BigInt(dim);
  const bits = elements * BigInt(BITS[dtype]);
  if (bits % 8n !== 0n) return undefined;
  return bits / 8n;
}
