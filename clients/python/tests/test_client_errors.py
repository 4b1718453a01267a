"""Error mapping and retry policy, against a real gRPC server that fails as scripted."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from conftest import Reply, abort, free_port

import toolplane.client
from toolplane import (
    NO_RETRY,
    AsyncToolplaneClient,
    Call,
    DeadlineExceeded,
    InfrastructureError,
    InvalidArgument,
    ModelError,
    NotFound,
    Overloaded,
    RetryPolicy,
    Status,
    ToolplaneClient,
    Unavailable,
)
from toolplane._proto import common_pb2, gateway_pb2

FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05)


def ok_execute(text: str = "done") -> gateway_pb2.ExecuteResponse:
    return gateway_pb2.ExecuteResponse(result=gateway_pb2.ToolResult(call_id="c1", name="python", text=text))


def inband(error_class: int, code: str, *, retryable: bool = False, retry_after_ms: int = 0):
    error = common_pb2.ToolError(
        error_class=error_class,
        code=code,
        message=f"{code} in band",
        retryable=retryable,
        retry_after_ms=retry_after_ms,
    )
    return gateway_pb2.ExecuteResponse(result=gateway_pb2.ToolResult(call_id="c1", text="observation", error=error))


@pytest.fixture
def sleeps(monkeypatch):
    """Records the delays the sync client sleeps between attempts (and still sleeps them)."""
    recorded = []
    real_sleep = toolplane.client.time.sleep

    def record(seconds):
        recorded.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(toolplane.client.time, "sleep", record)
    return recorded


@pytest.mark.parametrize(
    ("code", "error_class", "expected"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, "MODEL", InvalidArgument),
        (grpc.StatusCode.NOT_FOUND, "MODEL", NotFound),
        (grpc.StatusCode.ABORTED, "MODEL", ModelError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "INFRASTRUCTURE", Overloaded),
        (grpc.StatusCode.UNAVAILABLE, "INFRASTRUCTURE", Unavailable),
        (grpc.StatusCode.INTERNAL, "INFRASTRUCTURE", InfrastructureError),
        (grpc.StatusCode.FAILED_PRECONDITION, "INFRASTRUCTURE", InfrastructureError),
        # A model-class status must not turn into an infrastructure one just because of its code.
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "MODEL", ModelError),
    ],
)
def test_rpc_failure_maps_to_the_class_in_trailing_metadata(fake_gateway, code, error_class, expected):
    fake_gateway.script("Execute", abort(code, "field call.name: unknown tool 'x'", error_class))
    with ToolplaneClient(fake_gateway.target, retry=NO_RETRY, timeout=10) as client:
        with pytest.raises(expected) as raised:
            client.execute("s1", "x", {})
    error = raised.value
    assert type(error) is expected
    assert error.error_class == error_class
    assert error.code == code.name
    assert error.message == "field call.name: unknown tool 'x'"
    assert isinstance(error.__cause__, grpc.RpcError)


@pytest.mark.parametrize("declared", [None, "", "SOMETHING_ELSE"])
def test_failure_without_a_known_class_is_infrastructure(fake_gateway, declared):
    fake_gateway.script("ListTools", abort(grpc.StatusCode.INVALID_ARGUMENT, "from a proxy", declared))
    with ToolplaneClient(fake_gateway.target, retry=NO_RETRY, timeout=10) as client:
        with pytest.raises(InfrastructureError) as raised:
            client.list_tools()
    assert raised.value.error_class == "INFRASTRUCTURE"
    assert raised.value.code == "INVALID_ARGUMENT"


def test_model_errors_are_never_retried(fake_gateway):
    fake_gateway.script("Step", abort(grpc.StatusCode.INVALID_ARGUMENT, "text is empty", "MODEL"))
    with ToolplaneClient(fake_gateway.target, retry=FAST_RETRY, timeout=10) as client:
        with pytest.raises(InvalidArgument) as raised:
            client.step("s1", "")
    assert raised.value.attempts == 1
    assert len(fake_gateway.calls("Step")) == 1


def test_non_retryable_infrastructure_errors_are_not_retried(fake_gateway):
    fake_gateway.script("Execute", abort(grpc.StatusCode.INTERNAL, "bug", "INFRASTRUCTURE"))
    with ToolplaneClient(fake_gateway.target, retry=FAST_RETRY, timeout=10) as client:
        with pytest.raises(InfrastructureError) as raised:
            client.execute("s1", "python", {"code": "1"})
    assert not raised.value.retryable
    assert len(fake_gateway.calls("Execute")) == 1


def test_overload_is_retried_after_the_servers_hint_then_succeeds(fake_gateway, sleeps):
    fake_gateway.script(
        "Execute",
        abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full", "INFRASTRUCTURE", retry_after_ms=120),
        # No toolplane metadata: the gateway itself was not reached, so the call did not run.
        abort(grpc.StatusCode.UNAVAILABLE, "connection refused", None),
        Reply(ok_execute("42")),
    )
    with ToolplaneClient(fake_gateway.target, retry=FAST_RETRY, timeout=10) as client:
        result = client.execute("s1", "python", {"code": "print(42)"}, call_id="c1")
    assert result.text == "42"
    assert result.status is Status.OK
    assert len(fake_gateway.calls("Execute")) == 3
    # The same request every time.
    assert len({call.SerializeToString() for call in fake_gateway.calls("Execute")}) == 1
    assert len(sleeps) == 2
    assert sleeps[0] >= 0.12, "retry-after hint not honoured"
    assert sleeps[1] <= FAST_RETRY.max_backoff * (1 + FAST_RETRY.jitter)


def test_backend_outage_behind_the_gateway_is_not_retried_for_stateful_calls(fake_gateway, sleeps):
    """The gateway answered UNAVAILABLE: its code service failed, maybe mid-cell, maybe losing the kernel."""
    outage = abort(grpc.StatusCode.UNAVAILABLE, "code service unreachable", "INFRASTRUCTURE")
    for method in ("Execute", "Step", "ExecuteBatch", "ListTools"):
        fake_gateway.script(method, outage)
    with ToolplaneClient(fake_gateway.target, retry=FAST_RETRY, timeout=10) as client:
        for call in (
            lambda: client.execute("s1", "python", {"code": "x += 1"}),
            lambda: client.step("s1", "<code>...</code>"),
            lambda: client.execute_batch([Call("s1", "python", {"code": "x += 1"})]),
        ):
            with pytest.raises(Unavailable) as raised:
                call()
            assert raised.value.attempts == 1 and raised.value.from_server
        # A stateless call is safe to repeat.
        with pytest.raises(Unavailable) as stateless:
            client.list_tools()
    assert stateless.value.attempts == FAST_RETRY.max_attempts
    assert [len(fake_gateway.calls(m)) for m in ("Execute", "Step", "ExecuteBatch")] == [1, 1, 1]


def test_backend_outage_with_a_retry_hint_is_retried(fake_gateway, sleeps):
    fake_gateway.script(
        "Step",
        abort(grpc.StatusCode.UNAVAILABLE, "sandbox pool warming up", "INFRASTRUCTURE", retry_after_ms=30),
        Reply(gateway_pb2.StepResponse(outcome=gateway_pb2.STEP_OUTCOME_NO_CALL)),
    )
    with ToolplaneClient(fake_gateway.target, retry=FAST_RETRY, timeout=10) as client:
        assert client.step("s1", "thinking").status is Status.OK
    assert len(fake_gateway.calls("Step")) == 2 and sleeps[0] >= 0.03


def test_retries_stop_after_max_attempts_with_the_last_error(fake_gateway, sleeps):
    fake_gateway.script("Execute", abort(grpc.StatusCode.UNAVAILABLE, "down", None))
    with ToolplaneClient(fake_gateway.target, retry=FAST_RETRY, timeout=10) as client:
        with pytest.raises(Unavailable) as raised:
            client.execute("s1", "python", {"code": "1"})
    assert raised.value.attempts == FAST_RETRY.max_attempts
    assert len(fake_gateway.calls("Execute")) == FAST_RETRY.max_attempts
    assert len(sleeps) == FAST_RETRY.max_attempts - 1


def test_no_retry_when_the_hint_would_pass_the_deadline(fake_gateway, sleeps):
    fake_gateway.script(
        "Execute", abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full", "INFRASTRUCTURE", retry_after_ms=60_000)
    )
    with ToolplaneClient(fake_gateway.target, retry=FAST_RETRY, timeout=5) as client:
        with pytest.raises(Overloaded) as raised:
            client.execute("s1", "python", {"code": "1"})
    assert raised.value.retry_after == 60.0
    assert raised.value.retryable
    assert sleeps == []
    assert len(fake_gateway.calls("Execute")) == 1


def test_deadline_is_infrastructure_and_not_retried(fake_gateway):
    fake_gateway.script("Execute", Reply(ok_execute(), delay=3))
    with ToolplaneClient(fake_gateway.target, retry=FAST_RETRY, timeout=0.3) as client:
        with pytest.raises(DeadlineExceeded) as raised:
            client.execute("s1", "python", {"code": "import time; time.sleep(10)"})
    assert raised.value.error_class == "INFRASTRUCTURE"
    assert not raised.value.retryable
    assert len(fake_gateway.calls("Execute")) == 1


def test_unreachable_gateway_is_unavailable_infrastructure():
    with ToolplaneClient(f"127.0.0.1:{free_port()}", retry=FAST_RETRY, timeout=5) as client:
        with pytest.raises(Unavailable) as raised:
            client.list_tools()
    assert raised.value.error_class == "INFRASTRUCTURE"
    assert raised.value.attempts == FAST_RETRY.max_attempts


def test_in_band_model_error_is_returned_not_raised(fake_gateway):
    fake_gateway.script("Execute", Reply(inband(common_pb2.ERROR_CLASS_MODEL, "ABORTED")))
    with ToolplaneClient(fake_gateway.target, retry=FAST_RETRY, timeout=10) as client:
        result = client.execute("s1", "python", {"code": "1/0"})
    assert result.status is Status.MODEL_ERROR
    assert result.error_class == "MODEL"
    assert result.error.code == "ABORTED"
    assert result.text == "observation"
    assert len(fake_gateway.calls("Execute")) == 1


def test_in_band_infrastructure_error_raises_and_is_retried_when_marked_retryable(fake_gateway, sleeps):
    fake_gateway.script(
        "Execute",
        Reply(inband(common_pb2.ERROR_CLASS_INFRASTRUCTURE, "RESOURCE_EXHAUSTED", retryable=True, retry_after_ms=50)),
        Reply(inband(common_pb2.ERROR_CLASS_INFRASTRUCTURE, "UNAVAILABLE", retryable=False)),
    )
    with ToolplaneClient(fake_gateway.target, retry=FAST_RETRY, timeout=10) as client:
        with pytest.raises(Unavailable) as raised:
            client.execute("s1", "python", {"code": "1"})
    # Retried once after the hint, then stopped: the server marked the second failure final.
    assert sleeps and sleeps[0] >= 0.05
    assert raised.value.attempts == 2
    assert len(fake_gateway.calls("Execute")) == 2


def test_in_band_infrastructure_error_can_be_returned_instead(fake_gateway):
    fake_gateway.script("Execute", Reply(inband(common_pb2.ERROR_CLASS_INFRASTRUCTURE, "UNAVAILABLE")))
    with ToolplaneClient(fake_gateway.target, retry=FAST_RETRY, timeout=10) as client:
        result = client.execute("s1", "python", {"code": "1"}, raise_infrastructure=False)
    assert result.status is Status.INFRA_ERROR
    assert result.error.to_exception().error_class == "INFRASTRUCTURE"


def test_batch_items_keep_their_own_status(fake_gateway):
    results = [
        ok_execute("fine").result,
        inband(common_pb2.ERROR_CLASS_MODEL, "INVALID_ARGUMENT").result,
        inband(common_pb2.ERROR_CLASS_INFRASTRUCTURE, "UNAVAILABLE").result,
    ]
    fake_gateway.script("ExecuteBatch", Reply(gateway_pb2.ExecuteBatchResponse(results=results)))
    calls = [Call("s1", "python", {"code": "1"}), Call("s2", "search", '{"query": "q"}'), Call("s3", "image_search")]
    with ToolplaneClient(fake_gateway.target, retry=FAST_RETRY, timeout=10) as client:
        batch = client.execute_batch(calls)
    assert [item.status for item in batch] == [Status.OK, Status.MODEL_ERROR, Status.INFRA_ERROR]
    sent = fake_gateway.calls("ExecuteBatch")[0]
    assert [call.call.arguments_json for call in sent.calls] == ['{"code": "1"}', '{"query": "q"}', "{}"]
    assert [call.session_id for call in sent.calls] == ["s1", "s2", "s3"]


def test_step_request_carries_format_and_options(fake_gateway):
    fake_gateway.script(
        "Step", Reply(gateway_pb2.StepResponse(outcome=gateway_pb2.STEP_OUTCOME_ANSWER, answer="blue"))
    )
    with ToolplaneClient(fake_gateway.target, timeout=10, image_delivery="reference") as client:
        step = client.step("s1", "<answer>blue</answer>", format="hermes", tool_timeout=2.5, step=3)
    assert step.done and step.answer == "blue" and step.status is Status.OK
    sent = fake_gateway.calls("Step")[0]
    assert sent.format == gateway_pb2.MODEL_FORMAT_HERMES
    assert sent.timeout_ms == 2500
    assert sent.step == 3
    assert sent.image_delivery == gateway_pb2.IMAGE_DELIVERY_REFERENCE


def test_bad_client_options_fail_before_any_call(fake_gateway):
    with ToolplaneClient(fake_gateway.target, timeout=10) as client:
        with pytest.raises(ValueError, match="unknown model format 'deepeyes'"):
            client.step("s1", "text", format="deepeyes")
        with pytest.raises(ValueError, match="tool_timeout must be > 0"):
            client.execute("s1", "python", {}, tool_timeout=0)
        with pytest.raises(ValueError, match="unknown image delivery"):
            client.execute("s1", "python", {}, image_delivery="url")
    assert fake_gateway.calls("Step") == [] and fake_gateway.calls("Execute") == []
    with pytest.raises(ValueError, match="max_attempts must be >= 1"):
        RetryPolicy(max_attempts=0)


def test_backoff_grows_is_capped_and_never_undercuts_the_hint():
    policy = RetryPolicy(initial_backoff=0.1, max_backoff=1.0, multiplier=2.0, jitter=0.0)
    assert [policy.backoff(attempt, None) for attempt in (1, 2, 3, 4, 5, 6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert policy.backoff(1, 2.5) == 2.5
    jittered = RetryPolicy(initial_backoff=1.0, max_backoff=1.0, jitter=0.2)
    assert jittered.backoff(1, None, uniform=lambda: 0.0) == pytest.approx(0.8)
    assert jittered.backoff(1, None, uniform=lambda: 1.0) == pytest.approx(1.2)


def test_async_client_maps_errors_and_retries_the_same_way(fake_gateway):
    fake_gateway.script(
        "Execute",
        abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full", "INFRASTRUCTURE", retry_after_ms=20),
        Reply(ok_execute("after retry")),
    )
    fake_gateway.script("Step", abort(grpc.StatusCode.INVALID_ARGUMENT, "bad format", "MODEL"))
    fake_gateway.script("ListTools", Reply(gateway_pb2.ListToolsResponse(), delay=3))

    async def scenario():
        async with AsyncToolplaneClient(fake_gateway.target, retry=FAST_RETRY, timeout=10) as client:
            result = await client.execute("s1", "python", {"code": "1"})
            with pytest.raises(InvalidArgument) as model:
                await client.step("s1", "x")
            with pytest.raises(DeadlineExceeded) as deadline:
                await client.list_tools(timeout=0.3)
            return result, model.value, deadline.value

    result, model, deadline = asyncio.run(scenario())
    assert result.text == "after retry"
    assert len(fake_gateway.calls("Execute")) == 2
    assert model.error_class == "MODEL" and model.attempts == 1
    assert deadline.error_class == "INFRASTRUCTURE"
    assert len(fake_gateway.calls("Step")) == 1
    assert len(fake_gateway.calls("ListTools")) == 1


def test_async_session_closes_on_exit_and_numbers_turns(fake_gateway):
    fake_gateway.script("CreateSession", Reply(gateway_pb2.CreateSessionResponse(session_id="abc")))
    fake_gateway.script("CloseSession", Reply(gateway_pb2.CloseSessionResponse()))
    fake_gateway.script("Step", Reply(gateway_pb2.StepResponse(outcome=gateway_pb2.STEP_OUTCOME_NO_CALL)))

    async def scenario():
        async with AsyncToolplaneClient(fake_gateway.target, timeout=10) as client:
            async with client.session(rollout_id="r1", trajectory_id="t1", format="deepeyes-v1") as session:
                await session.step("thinking")
                await session.step("still thinking")
                return session.session_id

    assert asyncio.run(scenario()) == "abc"
    created = fake_gateway.calls("CreateSession")[0]
    assert (created.rollout_id, created.trajectory_id) == ("r1", "t1")
    assert [(s.session_id, s.step, s.format) for s in fake_gateway.calls("Step")] == [
        ("abc", 1, gateway_pb2.MODEL_FORMAT_DEEPEYES_V1),
        ("abc", 2, gateway_pb2.MODEL_FORMAT_DEEPEYES_V1),
    ]
    assert [c.session_id for c in fake_gateway.calls("CloseSession")] == ["abc"]


def test_session_exit_tolerates_an_already_closed_session(fake_gateway):
    fake_gateway.script("CreateSession", Reply(gateway_pb2.CreateSessionResponse(session_id="gone")))
    fake_gateway.script("CloseSession", abort(grpc.StatusCode.NOT_FOUND, "session gone: idle", "MODEL"))
    with ToolplaneClient(fake_gateway.target, timeout=10) as client:
        with client.session() as session:
            assert session.session_id == "gone"
    assert len(fake_gateway.calls("CloseSession")) == 1


def test_a_failed_close_never_hides_the_error_that_ended_the_block(fake_gateway):
    fake_gateway.script("CreateSession", Reply(gateway_pb2.CreateSessionResponse(session_id="s")))
    fake_gateway.script("CloseSession", abort(grpc.StatusCode.INTERNAL, "close failed", "INFRASTRUCTURE"))
    with ToolplaneClient(fake_gateway.target, timeout=10, retry=NO_RETRY) as client:
        with pytest.raises(KeyError, match="from the body"):
            with client.session():
                raise KeyError("from the body")
        # Without an error in the body, the failed close is reported.
        with pytest.raises(InfrastructureError, match="close failed"):
            with client.session():
                pass


@pytest.mark.skipif(
    "status" not in gateway_pb2.ToolResult.DESCRIPTOR.fields_by_name,
    reason="this gateway.proto has no ResultStatus field yet; status is derived from the error alone",
)
def test_explicit_result_status_wins_over_the_error_derived_one(fake_gateway):
    # An INFRA_ERROR status without an error body (e.g. a deadline of the caller) is still INFRA_ERROR.
    result = gateway_pb2.ToolResult(call_id="c", status=gateway_pb2.RESULT_STATUS_INFRA_ERROR)
    step = gateway_pb2.StepResponse(
        outcome=gateway_pb2.STEP_OUTCOME_PARSE_ERROR, status=gateway_pb2.RESULT_STATUS_MODEL_ERROR
    )
    fake_gateway.script("ExecuteBatch", Reply(gateway_pb2.ExecuteBatchResponse(results=[result])))
    fake_gateway.script("Step", Reply(step))
    with ToolplaneClient(fake_gateway.target, timeout=10) as client:
        assert client.execute_batch([Call("s", "code", {})])[0].status is Status.INFRA_ERROR
        assert client.step("s", "<tool_call>{</tool_call>").status is Status.MODEL_ERROR
