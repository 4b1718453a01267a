"""The synchronous client."""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import grpc

from ._core import (
    CHANNEL_OPTIONS,
    DEFAULT_TARGET,
    DEFAULT_TIMEOUT,
    Call,
    RetryPolicy,
    create_session_request,
    deadline_error,
    execute_request,
    infrastructure_error_in,
    step_request,
)
from ._proto import GATEWAY_SERVICE, gateway_pb2
from ._stub import GenericStub
from .errors import ToolplaneError, from_rpc_error
from .images import ToolImage, to_image_bytes
from .results import StepResult, Tool, ToolResult
from .tracing import call_metadata

Arguments = Union[Mapping[str, Any], str, None]


class ToolplaneClient:
    """Blocking client of toolplane.gateway.v1.ToolGateway.

    Args:
        target: gateway address, e.g. "127.0.0.1:50051" (ignored when channel is given).
        channel: an existing grpc.Channel to use instead (the caller closes it).
        timeout: default deadline in seconds of one call, retries included.
        retry: retry policy for retryable INFRASTRUCTURE errors; NO_RETRY disables retries.
        image_delivery: "bytes" (images inline) or "reference" (sha256 only; fetch with get_image).
        metadata: extra request metadata sent with every call, e.g. (("x-rollout", "r1"),). With the
            `opentelemetry` API importable, each call also carries the current span's W3C traceparent.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        channel: Optional[grpc.Channel] = None,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        retry: RetryPolicy = RetryPolicy(),
        image_delivery: str = "bytes",
        metadata: Sequence[Tuple[str, str]] = (),
    ) -> None:
        self._owns_channel = channel is None
        self._channel = channel if channel is not None else grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        self._stub = GenericStub(self._channel, gateway_pb2, GATEWAY_SERVICE.rsplit(".", 1)[1])
        self.timeout = timeout
        self.retry = retry
        self.image_delivery = image_delivery
        self._metadata = tuple(metadata)

    def close(self) -> None:
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> "ToolplaneClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _invoke(
        self,
        method: str,
        request: Any,
        timeout: Optional[float],
        check: Optional[Callable[[Any], Optional[ToolplaneError]]] = None,
        stateful: bool = False,
    ) -> Any:
        timeout = self.timeout if timeout is None else timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        rpc = getattr(self._stub, method)
        attempt = 0
        last: Optional[ToolplaneError] = None
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise deadline_error(method, timeout, attempt, last) from last
            attempt += 1
            try:
                response = rpc(request, timeout=remaining, metadata=call_metadata(self._metadata))
            except grpc.RpcError as rpc_error:
                error = from_rpc_error(rpc_error.code(), rpc_error.details(), rpc_error.trailing_metadata())
                error.__cause__ = rpc_error
            else:
                error = check(response) if check is not None else None
                if error is None:
                    return response
            error.attempts = attempt
            remaining = None if deadline is None else deadline - time.monotonic()
            delay = self.retry.next_delay(error, attempt, remaining, stateful)
            if delay is None:
                raise error
            last = error
            time.sleep(delay)

    def list_tools(self, names: Iterable[str] = (), *, timeout: Optional[float] = None) -> List[Tool]:
        """Tools the gateway offers (all, or only `names`), with parsed OpenAI function schemas."""
        response = self._invoke("ListTools", gateway_pb2.ListToolsRequest(names=list(names)), timeout)
        return [Tool.from_proto(tool) for tool in response.tools]

    def create_session(
        self,
        images: Iterable[Any] = (),
        *,
        rollout_id: str = "",
        trajectory_id: str = "",
        idle_ttl: Optional[float] = None,
        seed: Optional[int] = None,
        format: Union[str, int] = "deepeyes-v2",
        timeout: Optional[float] = None,
    ) -> "Session":
        """Opens a trajectory; the i-th image becomes image_i. Use as a context manager to close it.

        `seed` (0 <= seed < 2**32) seeds the random streams of the trajectory's code sessions, so a replay draws
        the same numbers; without it each code session draws fresh entropy.
        """
        request = create_session_request(images, rollout_id, trajectory_id, idle_ttl, seed)
        response = self._invoke("CreateSession", request, timeout)
        return Session(self, response.session_id, list(response.image_sha256), format)

    # `with client.session(images) as session:` reads best; both names do the same.
    session = create_session

    def close_session(self, session_id: str, *, timeout: Optional[float] = None) -> None:
        self._invoke("CloseSession", gateway_pb2.CloseSessionRequest(session_id=session_id), timeout)

    def close_rollout(self, rollout_id: str, *, timeout: Optional[float] = None) -> int:
        """Closes every session of a rollout; returns how many were open."""
        response = self._invoke("CloseRollout", gateway_pb2.CloseRolloutRequest(rollout_id=rollout_id), timeout)
        return response.closed_sessions

    def put_image(self, image: Any, *, timeout: Optional[float] = None) -> ToolImage:
        """Stores an image (PIL, bytes, path) and returns its reference; pass it as an input image later."""
        data, _ = to_image_bytes(image)
        response = self._invoke("PutImage", gateway_pb2.PutImageRequest(data=data), timeout)
        return ToolImage.from_proto(response.image)

    def get_image(self, sha256: str, *, timeout: Optional[float] = None) -> ToolImage:
        response = self._invoke("GetImage", gateway_pb2.GetImageRequest(sha256=sha256), timeout)
        return ToolImage.from_proto(response.image)

    def execute(
        self,
        session_id: str,
        name: str,
        arguments: Arguments = None,
        *,
        call_id: str = "",
        tool_timeout: Optional[float] = None,
        step: int = 0,
        image_delivery: Optional[str] = None,
        raise_infrastructure: bool = True,
        timeout: Optional[float] = None,
    ) -> ToolResult:
        """Runs one tool call. A MODEL error is in the result; an INFRASTRUCTURE one raises
        (unless raise_infrastructure=False, then it is in the result too)."""
        call = Call(session_id, name, arguments, call_id, tool_timeout, step)
        request = execute_request(call, image_delivery or self.image_delivery)
        check = infrastructure_error_in if raise_infrastructure else None
        return ToolResult.from_proto(self._invoke("Execute", request, timeout, check, stateful=True).result)

    def execute_batch(
        self, calls: Iterable[Call], *, image_delivery: Optional[str] = None, timeout: Optional[float] = None
    ) -> List[ToolResult]:
        """Runs the calls concurrently on the gateway; one result per call, in order, each with its own status."""
        delivery = image_delivery or self.image_delivery
        request = gateway_pb2.ExecuteBatchRequest(calls=[execute_request(call, delivery) for call in calls])
        response = self._invoke("ExecuteBatch", request, timeout, stateful=True)
        return [ToolResult.from_proto(result) for result in response.results]

    def step(
        self,
        session_id: str,
        text: str,
        *,
        format: Union[str, int] = "deepeyes-v2",
        tool_timeout: Optional[float] = None,
        step: int = 0,
        image_delivery: Optional[str] = None,
        raise_infrastructure: bool = True,
        timeout: Optional[float] = None,
    ) -> StepResult:
        """Parses one model turn ('deepeyes-v2', 'deepeyes-v1', 'hermes', 'openai'), runs its call,
        and returns the observation to append."""
        request = step_request(session_id, text, format, image_delivery or self.image_delivery, tool_timeout, step)
        check = infrastructure_error_in if raise_infrastructure else None
        return StepResult.from_proto(self._invoke("Step", request, timeout, check, stateful=True))


class Session:
    """One trajectory on the gateway; closes on leaving a `with` block.

    Turn numbers (`step`) count up by themselves unless given.
    """

    def __init__(self, client: ToolplaneClient, session_id: str, image_sha256: List[str], format: Union[str, int]):
        self.client = client
        self.session_id = session_id
        self.image_sha256 = image_sha256
        self.format = format
        self.turn = 0

    def _next_turn(self, step: Optional[int]) -> int:
        self.turn = self.turn + 1 if step is None else step
        return self.turn

    def step(self, text: str, *, step: Optional[int] = None, **options: Any) -> StepResult:
        options.setdefault("format", self.format)
        return self.client.step(self.session_id, text, step=self._next_turn(step), **options)

    def execute(
        self, name: str, arguments: Arguments = None, *, step: Optional[int] = None, **options: Any
    ) -> ToolResult:
        return self.client.execute(self.session_id, name, arguments, step=self._next_turn(step), **options)

    def call(self, name: str, arguments: Arguments = None, **options: Any) -> Call:
        """A Call on this session for client.execute_batch."""
        return Call(self.session_id, name, arguments, **options)

    def close(self) -> None:
        self.client.close_session(self.session_id)

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        try:
            self.close()
        except ToolplaneError as error:
            # NOT_FOUND: already gone (idle timeout or CloseRollout), nothing left to release.
            # And a failed close never hides the exception that ended the block.
            if exc_type is None and error.code != "NOT_FOUND":
                raise
