"""W3C trace context: with the opentelemetry API importable, calls carry the current span's traceparent.

Runs on the real `opentelemetry-api` when it is installed; otherwise on the stand-in in otel_standin/ (see its README),
which the client imports exactly as it would import the real API.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import sys
from pathlib import Path

import pytest
from conftest import Reply

import toolplane.tracing
from toolplane import AsyncToolplaneClient, ToolplaneClient
from toolplane._proto import gateway_pb2

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN_ID = 0x00F067AA0BA902B7
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
STANDIN = Path(__file__).resolve().parent / "otel_standin"


def test_without_the_api_the_client_sends_only_its_metadata(fake_gateway):
    """The package's own behaviour when opentelemetry is absent. First in this file: the stand-in is not loaded yet."""
    if importlib.util.find_spec("opentelemetry") is not None:
        pytest.skip("the opentelemetry API is installed: the absent-API path cannot be observed")
    fake_gateway.script("ListTools", Reply(gateway_pb2.ListToolsResponse()))
    with ToolplaneClient(fake_gateway.target) as client:
        client.list_tools()
    assert toolplane.tracing._propagate is None
    assert "traceparent" not in fake_gateway.metadata["ListTools"][0]


@pytest.fixture(scope="module")
def otel():
    """The opentelemetry API (real, or the stand-in put on sys.path), with toolplane.tracing re-imported over it."""
    added = False
    try:
        importlib.import_module("opentelemetry.propagate")
        print("\ntracing tests use the installed opentelemetry API")
    except ImportError:
        sys.path.insert(0, str(STANDIN))
        added = True
        print("\ntracing tests use the opentelemetry API stand-in (tests/otel_standin): the real one is not installed")
    importlib.reload(toolplane.tracing)
    trace = importlib.import_module("opentelemetry.trace")
    context = importlib.import_module("opentelemetry.context")
    yield trace, context
    if added:
        sys.path.remove(str(STANDIN))
        for name in [name for name in sys.modules if name == "opentelemetry" or name.startswith("opentelemetry.")]:
            del sys.modules[name]
    importlib.reload(toolplane.tracing)


def in_span(otel):
    """Makes a sampled span context current, as a caller's tracer would; returns the token to detach."""
    trace, context = otel
    span_context = trace.SpanContext(
        trace_id=TRACE_ID, span_id=SPAN_ID, is_remote=False, trace_flags=trace.TraceFlags(0x01)
    )
    return context.attach(trace.set_span_in_context(trace.NonRecordingSpan(span_context)))


def test_a_call_inside_a_span_carries_its_traceparent(fake_gateway, otel):
    fake_gateway.script("ListTools", Reply(gateway_pb2.ListToolsResponse()))
    token = in_span(otel)
    try:
        with ToolplaneClient(fake_gateway.target, metadata=(("x-rollout", "r1"),)) as client:
            client.list_tools()
    finally:
        otel[1].detach(token)
    sent = fake_gateway.metadata["ListTools"][0]
    assert sent["traceparent"] == TRACEPARENT
    assert sent["x-rollout"] == "r1"


def test_a_call_outside_any_span_carries_no_traceparent(fake_gateway, otel):
    fake_gateway.script("ListTools", Reply(gateway_pb2.ListToolsResponse()))
    with ToolplaneClient(fake_gateway.target) as client:
        client.list_tools()
    assert "traceparent" not in fake_gateway.metadata["ListTools"][0]


def test_a_traceparent_the_caller_set_wins(fake_gateway, otel):
    fake_gateway.script("ListTools", Reply(gateway_pb2.ListToolsResponse()))
    own = "00-11111111111111111111111111111111-2222222222222222-00"
    token = in_span(otel)
    try:
        with ToolplaneClient(fake_gateway.target, metadata=(("traceparent", own),)) as client:
            client.list_tools()
    finally:
        otel[1].detach(token)
    assert fake_gateway.metadata["ListTools"][0]["traceparent"] == own


def test_each_asyncio_task_sends_its_own_span(fake_gateway, otel):
    trace, context = otel
    fake_gateway.script("ListTools", Reply(gateway_pb2.ListToolsResponse()))

    async def rollout(client: AsyncToolplaneClient, span_id: int) -> None:
        span_context = trace.SpanContext(
            trace_id=TRACE_ID, span_id=span_id, is_remote=False, trace_flags=trace.TraceFlags(0x01)
        )
        token = context.attach(trace.set_span_in_context(trace.NonRecordingSpan(span_context)))
        try:
            await client.list_tools()
        finally:
            context.detach(token)

    async def scenario() -> None:
        async with AsyncToolplaneClient(fake_gateway.target) as client:
            await asyncio.gather(rollout(client, 0x1), rollout(client, 0x2))
            await client.list_tools()

    asyncio.run(scenario())
    sent = sorted(entry.get("traceparent", "") for entry in fake_gateway.metadata["ListTools"])
    assert sent == [
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000001-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000002-01",
    ]
