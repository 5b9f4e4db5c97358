// Synthetic Llama-shaped models (bf16) written as plain safetensors, streaming: the data never sits
// in memory whole. Shapes follow Llama-2 (MHA, SwiGLU MLP, intermediate ≈ 2.6875 × hidden, untied
// lm_head); the hidden size is picked from the target size and the vocabulary absorbs the remainder,
// so the data section lands within a few KiB of the target. Tensors are laid out in the canonical
// safetensors order, so a decrypted file's data section is byte-identical to the plain one's.

import { createHash, randomFillSync } from "node:crypto";
import { open } from "node:fs/promises";

const BF16 = 2;
const HIDDEN_CHOICES = [4096, 2048, 1024, 512, 256, 128];
const BASE_VOCAB = 32000;
const MIN_LAYERS = 4;

function intermediateOf(h) {
  return Math.round((h * 2.6875) / 256) * 256; // 4096 → 11008, 2048 → 5632
}

/** Tensors of one decoder layer, in Llama's order. */
function layerTensors(i, h, inter) {
  const p = `model.layers.${i}`;
  return [
    [`${p}.input_layernorm.weight`, [h]],
    [`${p}.self_attn.q_proj.weight`, [h, h]],
    [`${p}.self_attn.k_proj.weight`, [h, h]],
    [`${p}.self_attn.v_proj.weight`, [h, h]],
    [`${p}.self_attn.o_proj.weight`, [h, h]],
    [`${p}.post_attention_layernorm.weight`, [h]],
    [`${p}.mlp.gate_proj.weight`, [inter, h]],
    [`${p}.mlp.up_proj.weight`, [inter, h]],
    [`${p}.mlp.down_proj.weight`, [h, inter]],
  ];
}

const bytesOf = (shape) => shape.reduce((a, b) => a * b, 1) * BF16;

/**
 * Picks a Llama-shaped tensor list whose total bf16 size is close to `targetBytes`.
 * @returns {{ config: object, tensors: {name: string, shape: number[], bytes: number}[], dataBytes: number }}
 */
export function llamaShapes(targetBytes) {
  let h = HIDDEN_CHOICES.at(-1);
  for (const cand of HIDDEN_CHOICES) {
    const inter = intermediateOf(cand);
    const perLayer = (4 * cand * cand + 3 * cand * inter + 2 * cand) * BF16;
    if (MIN_LAYERS * perLayer + 2 * BASE_VOCAB * cand * BF16 <= targetBytes) {
      h = cand;
      break;
    }
  }
  const inter = intermediateOf(h);
  const perLayer = (4 * h * h + 3 * h * inter + 2 * h) * BF16;
  let vocab = BASE_VOCAB;
  while (vocab > 256 && 2 * vocab * h * BF16 > targetBytes / 2) vocab = Math.floor(vocab / 2); // tiny targets
  const fixed = 2 * vocab * h * BF16 + h * BF16; // embed + lm_head + final norm
  const layers = Math.max(1, Math.floor((targetBytes - fixed) / perLayer));
  const rest = targetBytes - fixed - layers * perLayer;
  if (rest > 0) vocab += Math.floor(rest / (2 * h * BF16)); // the vocabulary absorbs the remainder
  const list = [["model.embed_tokens.weight", [vocab, h]]];
  for (let i = 0; i < layers; i++) list.push(...layerTensors(i, h, inter));
  list.push(["model.norm.weight", [h]], ["lm_head.weight", [vocab, h]]);
  // Data order as safetensors' save_file (and our encryptFile) lay tensors out: by dtype, then name
  // byte-wise (all bf16 here; ASCII names, so code-unit order is byte order).
  const tensors = list
    .map(([name, shape]) => ({ name, shape, bytes: bytesOf(shape) }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const dataBytes = tensors.reduce((a, t) => a + t.bytes, 0);
  return { config: { hidden_size: h, intermediate_size: inter, num_hidden_layers: layers, vocab_size: vocab }, tensors, dataBytes };
}

/** The safetensors header bytes (8-byte LE length + JSON padded with spaces to a multiple of 8). */
export function safetensorsHeader(tensors, metadata = { format: "pt" }) {
  const obj = { __metadata__: metadata };
  let off = 0;
  for (const t of tensors) {
    obj[t.name] = { dtype: "BF16", shape: t.shape, data_offsets: [off, off + t.bytes] };
    off += t.bytes;
  }
  let json = Buffer.from(JSON.stringify(obj), "utf8");
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([prefix, json]);
}

const POOL_BYTES = 64 * 1024 * 1024;
const PIECE_BYTES = 16 * 1024 * 1024;

/**
 * Writes a plain safetensors file of the given tensors, streaming 16 MiB pieces taken from a 64 MiB
 * random pool at rotating offsets ("random-ish": incompressible, not all distinct).
 * @returns {{ fileBytes: number, dataBytes: number, dataSha256: string }}
 */
export async function writeSyntheticModel(path, tensors, { onProgress } = {}) {
  const pool = randomFillSync(Buffer.allocUnsafe(POOL_BYTES));
  const header = safetensorsHeader(tensors);
  const hash = createHash("sha256");
  const fh = await open(path, "w", 0o644);
  let pos = 0;
  let k = 0;
  const write = async (buf) => {
    let done = 0;
    while (done < buf.length) done += (await fh.write(buf, done, buf.length - done, pos + done)).bytesWritten;
    pos += buf.length;
  };
  try {
    await write(header);
    const dataStart = pos;
    for (const t of tensors) {
      for (let off = 0; off < t.bytes; off += PIECE_BYTES, k++) {
        const n = Math.min(PIECE_BYTES, t.bytes - off);
        const start = ((k * 7_340_033) % (POOL_BYTES - n)) & ~63;
        const piece = pool.subarray(start, start + n);
        hash.update(piece);
        await write(piece);
        onProgress?.(pos - dataStart);
      }
    }
    return { fileBytes: pos, dataBytes: pos - dataStart, dataSha256: hash.digest("hex") };
  } finally {
    await fh.close();
  }
}

/** SHA-256 of a safetensors file's data section (everything after the header). */
export async function dataSha256(path) {
  const fh = await open(path, "r");
  try {
    const prefix = Buffer.alloc(8);
    await fh.read(prefix, 0, 8, 0);
    let pos = 8 + Number(prefix.readBigUInt64LE());
    const hash = createHash("sha256");
    const buf = Buffer.allocUnsafe(PIECE_BYTES);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
    return hash.digest("hex");
  } finally {
    await fh.close();
  }
}

/** Reads a whole file once (to warm the page cache); returns its size. */
export async function readThrough(path) {
  const fh = await open(path, "r");
  try {
    const buf = Buffer.allocUnsafe(PIECE_BYTES);
    let pos = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) return pos;
      pos += bytesRead;
    }
  } finally {
    await fh.close();
  }
}
