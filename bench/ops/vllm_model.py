"""Writes the vLLM part's synthetic Llama as a Hugging Face folder (untimed fixture, not a measurement).

usage: python bench/ops/vllm_model.py OUT_DIR CONFIG_JSON [--shard-mib 2048]

CONFIG_JSON: hidden_size, intermediate_size, num_hidden_layers, vocab_size (bench/lib/model.mjs
llamaShapes picks them for the run's size). Written: config.json (LlamaConfig, head size 64: one that
vLLM's CPU attention supports), the byte-level tokenizer of scripts/make_tiny_model.py, and the
weights as bf16 safetensors, N(0, 0.02) with unit norms (fixed seed), so vLLM's greedy tokens are
deterministic and meaningful (random bytes would hold NaNs). One file, or shards of at most
--shard-mib with model.safetensors.index.json as Hugging Face writes them. One tensor is built at a
time, so memory stays near one shard.
"""

import argparse
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
from make_tiny_model import byte_level_tokenizer

HEAD_DIM = 64


def tensor_shapes(c):
    h, inter, vocab = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    out = [("model.embed_tokens.weight", (vocab, h))]
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}"
        out += [
            (f"{p}.input_layernorm.weight", (h,)),
            (f"{p}.self_attn.q_proj.weight", (h, h)),
            (f"{p}.self_attn.k_proj.weight", (h, h)),
            (f"{p}.self_attn.v_proj.weight", (h, h)),
            (f"{p}.self_attn.o_proj.weight", (h, h)),
            (f"{p}.post_attention_layernorm.weight", (h,)),
            (f"{p}.mlp.gate_proj.weight", (inter, h)),
            (f"{p}.mlp.up_proj.weight", (inter, h)),
            (f"{p}.mlp.down_proj.weight", (h, inter)),
        ]
    return [*out, ("model.norm.weight", (h,)), ("lm_head.weight", (vocab, h))]


def make(name, shape, gen):
    if len(shape) == 1:
        return torch.ones(shape, dtype=torch.bfloat16)
    return (torch.randn(shape, generator=gen) * 0.02).to(torch.bfloat16)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("out")
    p.add_argument("config")
    p.add_argument("--shard-mib", type=int, default=2048)
    args = p.parse_args()
    c = json.loads(args.config)
    os.makedirs(args.out, exist_ok=True)
    config = LlamaConfig(
        architectures=["LlamaForCausalLM"],
        vocab_size=c["vocab_size"],
        hidden_size=c["hidden_size"],
        intermediate_size=c["intermediate_size"],
        num_hidden_layers=c["num_hidden_layers"],
        num_attention_heads=c["hidden_size"] // HEAD_DIM,
        num_key_value_heads=c["hidden_size"] // HEAD_DIM,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        torch_dtype="bfloat16",
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    config.save_pretrained(args.out)
    byte_level_tokenizer().save_pretrained(args.out)

    shapes = tensor_shapes(c)
    limit = args.shard_mib * 2**20
    shards, current, size = [], [], 0
    for name, shape in shapes:
        n = 2 * int(torch.Size(shape).numel())
        if current and size + n > limit:
            shards.append(current)
            current, size = [], 0
        current.append((name, shape))
        size += n
    shards.append(current)

    gen = torch.Generator().manual_seed(0)
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        file = "model.safetensors" if len(shards) == 1 else f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        tensors = {name: make(name, shape, gen) for name, shape in shard}
        total += sum(t.numel() * t.element_size() for t in tensors.values())
        save_file(tensors, os.path.join(args.out, file), metadata={"format": "pt"})
        weight_map.update({name: file for name in tensors})
        del tensors
    if len(shards) > 1:
        with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    print(json.dumps({"tensors": len(shapes), "dataBytes": total, "shards": len(shards)}))


if __name__ == "__main__":
    main()
