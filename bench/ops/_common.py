"""Shared by the Python child processes in bench/ops (same protocol as _common.mjs).

A child prints exactly one line ``BENCH_RESULT {json}`` on stdout.
"""

import json
import os
import re
import resource
import sys
import time

_FIELDS = ("VmRSS", "VmHWM", "RssAnon", "RssFile")


def mem_status():
    """Memory figures (KiB) from /proc/self/status."""
    with open("/proc/self/status") as f:
        text = f.read()
    out = {}
    for name in _FIELDS:
        m = re.search(rf"^{name}:\s+(\d+) kB", text, re.M)
        out[name] = int(m.group(1)) if m else None
    return out


def begin():
    """Records the peak so far, resets the kernel's peak-RSS counter, starts the clocks."""
    before = mem_status()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        reset = False
    t = os.times()
    return {
        "t0": time.perf_counter(),
        "cpu0": t.user + t.system,
        "faults0": resource.getrusage(resource.RUSAGE_SELF).ru_minflt,
        "before": before,
        "reset": reset,
    }


def finish(probe, **fields):
    """Ends the measured section and prints the result line; ``fields`` may override ``seconds``."""
    seconds = time.perf_counter() - probe["t0"]
    t = os.times()
    after = mem_status()
    result = {
        "seconds": seconds,
        "cpuSeconds": t.user + t.system - probe["cpu0"],
        "minorFaults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - probe["faults0"],
        **fields,
        "rssStartKiB": probe["before"]["VmRSS"],
        "prePeakKiB": probe["before"]["VmHWM"],
        "opPeakKiB": after["VmHWM"] if probe["reset"] else None,
        "rssEndKiB": after["VmRSS"],
    }
    sys.stdout.write("BENCH_RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
    return result


def load_key_dir(key_dir):
    """enc.jwk, sign.jwk and sign.pub.jwk as written by ``ctensors keygen`` (reference spelling)."""

    def read(name):
        with open(os.path.join(key_dir, name)) as f:
            return json.load(f)

    return read("enc.jwk"), read("sign.jwk"), read("sign.pub.jwk")
