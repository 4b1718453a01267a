"""A client with no project code (Debian's grpcio + protoc-compiled public protos) lists and probes every service."""

import grpc
import pytest

SERVICES = {
    "GATEWAY": "toolplane.gateway.v1.ToolGateway",
    "IMAGE": "toolplane.image.v1.ImageService",
    "CODE": "toolplane.code.v1.CodeService",
    "SEARCH": "toolplane.search.v1.SearchService",
}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_reflection_lists_the_service_and_health_reports_serving(system, standard_stubs, name):
    health_pb2, reflection_pb2 = standard_stubs
    with grpc.insecure_channel(system[name]) as channel:
        reflect = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        replies = list(reflect(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10))
        listed = {service.name for service in replies[0].list_services_response.service}
        assert SERVICES[name] in listed
        assert "grpc.health.v1.Health" in listed

        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        reply = check(health_pb2.HealthCheckRequest(service=SERVICES[name]), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_serves_the_file_describing_the_service(system, standard_stubs):
    _, reflection_pb2 = standard_stubs
    with grpc.insecure_channel(system["IMAGE"]) as channel:
        reflect = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        request = reflection_pb2.ServerReflectionRequest(file_containing_symbol="toolplane.image.v1.ImageService")
        reply = list(reflect(iter([request]), timeout=10))[0]
        assert reply.file_descriptor_response.file_descriptor_proto, reply
