"""Child: the reference's decrypting load (PyPI cryptotensors).

usage: python bench/ops/ref_load.py ENCRYPTED KEYDIR [--load-file]

Timed: cryptotensors.safe_open(ENCRYPTED, framework="pt", config=keys) (signature check, key unwrap)
+ get_tensor of every tensor, each dropped at once. Nothing is cloned or compared.
With --load-file: the keys are registered with register_direct_key_provider (untimed) and the timed
part is cryptotensors.torch.load_file(ENCRYPTED), which returns every tensor in this process's memory
(kept until the end), as the issue's item 3 asks.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _common import begin, finish, load_key_dir

import cryptotensors
import torch  # noqa: F401

path, key_dir = sys.argv[1:3]
use_load_file = "--load-file" in sys.argv[3:]
enc, _sign, pub = load_key_dir(key_dir)
config = {"enc_key": enc, "sign_key": pub}
if use_load_file:
    import cryptotensors.torch

    cryptotensors.register_direct_key_provider(keys=[enc, pub])
    probe = begin()
    tensors = cryptotensors.torch.load_file(path)
    nbytes = sum(t.nbytes for t in tensors.values())
    largest = max((t.nbytes for t in tensors.values()), default=0)
    finish(probe, bytes=nbytes, tensors=len(tensors), largestTensorBytes=largest)
    sys.exit(0)

probe = begin()
nbytes = 0
count = 0
largest = 0
with cryptotensors.safe_open(path, framework="pt", config=config) as f:
    for name in f.keys():
        t = f.get_tensor(name)
        nbytes += t.nbytes
        largest = max(largest, t.nbytes)
        count += 1
        del t
finish(probe, bytes=nbytes, tensors=count, largestTensorBytes=largest)
