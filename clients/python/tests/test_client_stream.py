"""The Connect stream: many requests on one bidirectional RPC, answered out of order, errors typed like unary calls."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from toolplane import AsyncToolplaneClient, InvalidArgument, RetryPolicy, Status, Unavailable
from toolplane._proto import common_pb2, gateway_pb2

FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05)


def answer(message: gateway_pb2.WorkerMessage) -> gateway_pb2.GatewayMessage:
    step = gateway_pb2.StepResponse(outcome=gateway_pb2.STEP_OUTCOME_ANSWER, answer=message.step.text.upper())
    return gateway_pb2.GatewayMessage(request_id=message.request_id, step=step)


def run(fake_gateway, scenario):
    async def main():
        async with AsyncToolplaneClient(fake_gateway.target, retry=FAST_RETRY, timeout=10) as client:
            async with client.stream() as stream:
                return await scenario(stream)

    return asyncio.run(main())


def test_concurrent_requests_share_one_stream_and_are_matched_by_request_id(fake_gateway):
    def reverse_after_three(requests, context):
        received = [next(requests) for _ in range(3)]
        for message in reversed(received):
            yield answer(message)

    fake_gateway.connect = reverse_after_three

    async def scenario(stream):
        return await asyncio.gather(*(stream.step("s", text) for text in ("a", "b", "c")))

    steps = run(fake_gateway, scenario)
    assert [step.answer for step in steps] == ["A", "B", "C"]
    assert all(step.done and step.status is Status.OK for step in steps)
    assert fake_gateway.connect_streams == 1


def test_error_replies_are_typed_and_retried_only_when_retryable(fake_gateway):
    seen = []

    def errors_then_answers(requests, context):
        for message in requests:
            seen.append(message.WhichOneof("request"))
            if message.step.text == "overloaded" and seen.count("step") == 1:
                error = common_pb2.ToolError(
                    error_class=common_pb2.ERROR_CLASS_INFRASTRUCTURE,
                    code="RESOURCE_EXHAUSTED",
                    message="stream queue full",
                    retryable=True,
                    retry_after_ms=20,
                )
                yield gateway_pb2.GatewayMessage(request_id=message.request_id, error=error)
            elif message.WhichOneof("request") == "execute":
                error = common_pb2.ToolError(
                    error_class=common_pb2.ERROR_CLASS_MODEL, code="INVALID_ARGUMENT", message="session_id: empty"
                )
                yield gateway_pb2.GatewayMessage(request_id=message.request_id, error=error)
            else:
                yield answer(message)

    fake_gateway.connect = errors_then_answers

    async def scenario(stream):
        retried = await stream.step("s", "overloaded")
        with pytest.raises(InvalidArgument) as model:
            await stream.execute("", "code", {"code": "1"})
        return retried, model.value

    retried, model = run(fake_gateway, scenario)
    assert retried.answer == "OVERLOADED"
    assert seen == ["step", "step", "execute"]
    assert model.error_class == "MODEL" and model.attempts == 1


def test_a_broken_stream_fails_waiting_requests_and_the_next_request_reopens_it(fake_gateway):
    def break_first_stream(requests, context):
        message = next(requests)
        if fake_gateway.connect_streams == 1:
            context.abort(grpc.StatusCode.UNAVAILABLE, "gateway restarting")
        yield answer(message)

    fake_gateway.connect = break_first_stream

    async def scenario(stream):
        with pytest.raises(Unavailable) as broken:
            await stream.step("s", "lost")
        again = await stream.step("s", "again")
        return broken.value, again

    broken, again = run(fake_gateway, scenario)
    # The request was written before the stream broke: it may have run, so it is not retried blindly.
    assert broken.attempts == 1 and broken.from_server
    assert again.answer == "AGAIN"
    assert fake_gateway.connect_streams == 2
