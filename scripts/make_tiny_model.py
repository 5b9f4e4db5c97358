"""Writes a tiny Llama-architecture model with random weights (fixed seed) as a Hugging Face folder.

Used by the demo and the tests: config.json, generation_config.json and the weights as safetensors,
sharded with an index (model.safetensors.index.json) so that folder handling is exercised.
Usage: python scripts/make_tiny_model.py OUT_DIR [--seed N] [--shard-size 200KB]
"""

import argparse

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shard-size", default="200KB")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    config = LlamaConfig(
        vocab_size=256,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(args.out, max_shard_size=args.shard_size, safe_serialization=True)
    print(f"wrote a tiny Llama ({sum(p.numel() for p in model.parameters())} parameters) to {args.out}")


if __name__ == "__main__":
    main()
