"""Generated gRPC stubs for proto/ctensors/sidecar/v1/sidecar.proto (do not edit; run scripts/gen_proto.py)."""
