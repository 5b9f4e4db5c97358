"""Runs real vLLM (`vllm.LLM`) once and prints the greedy tokens as one JSON line `RESULT {...}`.

A child process per engine: vLLM starts its own processes (spawn), and two engines in one test
process would share global state. Argument: a JSON object with model, load_format, extra (the
model_loader_extra_config or null), tp (tensor-parallel size), prompts, max_tokens.
"""

import json
import sys


def main() -> None:
    args = json.loads(sys.argv[1])
    from vllm import LLM, SamplingParams

    kwargs = {}
    if args.get("extra") is not None:
        kwargs["model_loader_extra_config"] = args["extra"]
    llm = LLM(
        model=args["model"],
        load_format=args["load_format"],
        dtype="float32",
        enforce_eager=True,
        max_model_len=128,
        max_num_seqs=4,
        seed=0,
        tensor_parallel_size=args.get("tp", 1),
        distributed_executor_backend="mp",
        **kwargs,
    )
    outputs = llm.generate(args["prompts"], SamplingParams(temperature=0.0, max_tokens=args["max_tokens"]))
    tokens = [list(o.outputs[0].token_ids) for o in outputs]
    print("RESULT " + json.dumps({"tokens": tokens}), flush=True)


if __name__ == "__main__":
    main()
