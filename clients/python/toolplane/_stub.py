"""Service stubs built from the service descriptor instead of a grpc codegen plugin.

Every method of the service becomes a callable on the stub, created with
channel.unary_unary / unary_stream / stream_unary / stream_stream and the message
classes' own serializers. This works the same with grpc.Channel and
grpc.aio.Channel, and with every grpcio and protobuf release that has them.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from google.protobuf.descriptor import ServiceDescriptor


def _message_class(module: ModuleType, full_name: str, package: str) -> Any:
    prefix = package + "."
    if not full_name.startswith(prefix):
        raise TypeError(f"{full_name} is not defined in {package}; add its module to the stub builder")
    return getattr(module, full_name[len(prefix) :])


class GenericStub:
    """Callables named after the RPCs of one service, e.g. stub.Execute(request, timeout=...)."""

    def __init__(self, channel: Any, module: ModuleType, service_name: str) -> None:
        descriptor: ServiceDescriptor = module.DESCRIPTOR.services_by_name[service_name]
        package = module.DESCRIPTOR.package
        for method in descriptor.methods:
            request_class = _message_class(module, method.input_type.full_name, package)
            response_class = _message_class(module, method.output_type.full_name, package)
            streaming = (method.client_streaming, method.server_streaming)
            factory = {
                (False, False): channel.unary_unary,
                (False, True): channel.unary_stream,
                (True, False): channel.stream_unary,
                (True, True): channel.stream_stream,
            }[streaming]
            setattr(
                self,
                method.name,
                factory(
                    f"/{descriptor.full_name}/{method.name}",
                    request_serializer=request_class.SerializeToString,
                    response_deserializer=response_class.FromString,
                ),
            )
