"""Demo step: load the encrypted model through the sidecar with ctensors.transformers, generate, and
compare with the plaintext model (same greedy tokens, every tensor bitwise equal).

Usage: python scripts/demo_generate.py ENCRYPTED PLAIN_DIR --socket PATH
ENCRYPTED: a local encrypted folder or a Hub model org/name[@rev] that the sidecar fetches.
"""

import argparse
import time

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

import ctensors
import ctensors.transformers

PROMPT = "Confidential weights"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("encrypted")
    p.add_argument("plain")
    p.add_argument("--socket", required=True)
    args = p.parse_args()

    t0 = time.perf_counter()
    model = ctensors.transformers.from_pretrained(args.encrypted, socket=args.socket).eval()
    t_load = time.perf_counter() - t0
    with ctensors.safe_open(args.encrypted, socket=args.socket) as f:
        # The sidecar's folder (for a Hub model, its snapshot in the HF cache): tokenizer files are plaintext.
        folder, commit = f.local_path, f.commit
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=20, min_new_tokens=20, do_sample=False)
    t_gen = time.perf_counter() - t0

    reference = AutoModelForCausalLM.from_pretrained(args.plain).eval()
    with torch.no_grad():
        expected = reference.generate(ids, max_new_tokens=20, min_new_tokens=20, do_sample=False)
    assert torch.equal(out, expected), "generation differs from the plaintext model"
    plain = {}
    for shard in sorted(__import__("glob").glob(f"{args.plain}/*.safetensors")):
        plain.update(load_file(shard))
    served = ctensors.load_file(args.encrypted, socket=args.socket)
    assert served.keys() == plain.keys()
    assert all(torch.equal(served[k].view(torch.uint8), plain[k].view(torch.uint8)) for k in plain), "tensor mismatch"

    if commit:
        print(f"served {args.encrypted} at commit {commit} from {folder}")
    print(f"prompt:    {PROMPT!r}")
    print(f"generated: {tokenizer.decode(out[0, ids.shape[1] :])!r}  (random weights, so gibberish)")
    print(f"20 greedy tokens identical to the plaintext model; {len(plain)} tensors bitwise equal")
    print(f"load through the sidecar: {t_load * 1000:.0f} ms, generate: {t_gen * 1000:.0f} ms")


if __name__ == "__main__":
    main()
