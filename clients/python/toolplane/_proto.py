"""The generated message modules, with a clear message when they were never generated."""

try:
    from toolplane._generated.toolplane.common.v1 import common_pb2
    from toolplane._generated.toolplane.gateway.v1 import gateway_pb2
except ImportError as error:  # pragma: no cover - exercised only on a fresh checkout
    raise ImportError(
        "toolplane's protobuf modules are not generated: run `python3 clients/python/generate.py` "
        "(or `make python-client`) from the repository root"
    ) from error

GATEWAY_SERVICE = "toolplane.gateway.v1.ToolGateway"

__all__ = ["GATEWAY_SERVICE", "common_pb2", "gateway_pb2"]
