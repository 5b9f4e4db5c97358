"""Child: the reference's encrypted save (PyPI cryptotensors).

usage: python bench/ops/ref_save.py PLAIN OUT KEYDIR

Untimed: import torch/cryptotensors, safetensors.torch.load_file(PLAIN) (tensors in memory, as the
save API requires). Timed: cryptotensors.torch.save_file(tensors, OUT, config=v2 + keys) only.
Then, timed separately, an fsync of OUT (fsyncSeconds) so it can be compared with encryptFile,
which fsyncs before returning.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import begin, finish, load_key_dir

import cryptotensors.torch
from safetensors.torch import load_file

plain, out, key_dir = sys.argv[1:4]
enc, sign, _pub = load_key_dir(key_dir)
tensors = load_file(plain)
nbytes = sum(t.nbytes for t in tensors.values())
config = {"enc_key": enc, "sign_key": sign, "version": "2"}

probe = begin()
cryptotensors.torch.save_file(tensors, out, metadata={"format": "pt"}, config=config)
save_done = time.perf_counter()
fd = os.open(out, os.O_RDONLY)
try:
    os.fsync(fd)
finally:
    os.close(fd)
fsync_seconds = time.perf_counter() - save_done
finish(probe, seconds=save_done - probe["t0"], fsyncSeconds=fsync_seconds, bytes=nbytes, tensors=len(tensors))
