"""Writes a tiny Llama-architecture model with random weights (fixed seed) as a Hugging Face folder.

Used by the demo and the tests: config.json, generation_config.json, a byte-level tokenizer built
locally (tokenizer.json; nothing is downloaded) and the weights as safetensors, sharded with an index
(model.safetensors.index.json) so that folder handling is exercised.
Usage: python scripts/make_tiny_model.py OUT_DIR [--seed N] [--shard-size 200KB]
"""

import argparse

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

VOCAB = 256  # one token per byte


def byte_level_tokenizer() -> PreTrainedTokenizerFast:
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tok = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shard-size", default="200KB")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(args.out, max_shard_size=args.shard_size, safe_serialization=True)
    byte_level_tokenizer().save_pretrained(args.out)
    print(f"wrote a tiny Llama ({sum(p.numel() for p in model.parameters())} parameters) to {args.out}")


if __name__ == "__main__":
    main()
