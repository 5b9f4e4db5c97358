"""The vLLM tests run with .venv-vllm/bin/python (vLLM installed), apart from python-shim/tests."""
