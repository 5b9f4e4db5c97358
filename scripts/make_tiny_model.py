"""Writes a tiny Llama-architecture model with random weights (fixed seed) as a Hugging Face folder.

Used by the demo and the tests: config.json, generation_config.json, a byte-level tokenizer built
locally (tokenizer.json; nothing is downloaded) and the weights as safetensors, sharded with an index
(model.safetensors.index.json) so that folder handling is exercised.
Usage: python scripts/make_tiny_model.py OUT_DIR [--seed N] [--shard-size 200KB] [--vllm]

--vllm: a variant whose attention head size (64) is one that vLLM's CPU attention backend supports
(the default has 16); used by the vLLM test (python-shim/tests_vllm).
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
    p.add_argument("--vllm", action="store_true", help="head size 64, for vLLM's CPU attention backend")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    # default: hidden 64 / 4 heads = head size 16; --vllm: hidden 128 / 2 heads = head size 64
    sizes = (
        dict(hidden_size=128, intermediate_size=256, num_attention_heads=2, num_key_value_heads=2)
        if args.vllm
        else dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2)
    )
    config = LlamaConfig(
        vocab_size=VOCAB,
        **sizes,
        num_hidden_layers=2,
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
