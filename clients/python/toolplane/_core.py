"""What the sync and asyncio clients share: request building, retry policy, in-band error checks."""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Mapping, Optional, Union

from .errors import DeadlineExceeded, ToolplaneError
from .images import to_proto_image
from .results import ErrorInfo
from ._proto import gateway_pb2

DEFAULT_TARGET = "127.0.0.1:50051"
# The prompt of DeepEyesV2 gives code 300 s per call; the RPC gets a little more.
DEFAULT_TIMEOUT = 330.0
# Images travel inline: match the servers' 64 MiB message limit instead of grpc's 4 MiB default.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
)

FORMATS = {
    "deepeyes-v2": gateway_pb2.MODEL_FORMAT_DEEPEYES_V2,
    "deepeyes-v1": gateway_pb2.MODEL_FORMAT_DEEPEYES_V1,
    "hermes": gateway_pb2.MODEL_FORMAT_HERMES,
    "openai": gateway_pb2.MODEL_FORMAT_OPENAI,
}
IMAGE_DELIVERIES = {
    "bytes": gateway_pb2.IMAGE_DELIVERY_BYTES,
    "reference": gateway_pb2.IMAGE_DELIVERY_REFERENCE,
}


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, for INFRASTRUCTURE errors marked retryable only.

    A retry never sleeps less than the server's retry-after hint, and never
    past the call's deadline: then the last error is raised instead.
    """

    max_attempts: int = 5
    initial_backoff: float = 0.1
    max_backoff: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter}")
        if self.initial_backoff < 0 or self.max_backoff < self.initial_backoff:
            raise ValueError("backoffs must satisfy 0 <= initial_backoff <= max_backoff")

    def backoff(
        self, attempt: int, retry_after: Optional[float], uniform: Callable[[], float] = random.random
    ) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        jittered = base * (1 + self.jitter * (2 * uniform() - 1))
        return max(jittered, retry_after or 0.0)

    def next_delay(
        self, error: ToolplaneError, attempt: int, remaining: Optional[float], stateful: bool = False
    ) -> Optional[float]:
        """Seconds to wait before retrying, or None when the error must be raised now.

        A stateful call (Execute, ExecuteBatch, Step) that the server answered with
        UNAVAILABLE and no retry-after hint is not retried: the backend behind the
        gateway failed, possibly mid-call or losing the trajectory's kernel, and a
        silent retry would run the model's next cell against lost state.
        """
        if not error.retryable or attempt >= self.max_attempts:
            return None
        if stateful and error.code == "UNAVAILABLE" and error.from_server and error.retry_after is None:
            return None
        delay = self.backoff(attempt, error.retry_after)
        if remaining is not None and delay >= remaining:
            return None
        return delay


NO_RETRY = RetryPolicy(max_attempts=1)


def deadline_error(method: str, timeout: float, attempts: int, last: Optional[ToolplaneError]) -> ToolplaneError:
    message = f"{method}: deadline of {timeout:g}s spent after {attempts} attempt(s)"
    if last is not None:
        message += f"; last error {last.code}: {last.message}"
    return DeadlineExceeded(message, code="DEADLINE_EXCEEDED", attempts=attempts)


def encode_arguments(arguments: Union[Mapping[str, Any], str, None]) -> str:
    if arguments is None:
        return "{}"
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments)


def milliseconds(seconds: Optional[float], name: str) -> int:
    if seconds is None:
        return 0
    if seconds <= 0:
        raise ValueError(f"{name} must be > 0 seconds, got {seconds}")
    return max(1, round(seconds * 1000))


def model_format(name: Union[str, int]) -> int:
    if isinstance(name, int):
        return name
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown model format {name!r}; known: {', '.join(FORMATS)}") from None


def image_delivery(name: str) -> int:
    try:
        return IMAGE_DELIVERIES[name]
    except KeyError:
        raise ValueError(f"unknown image delivery {name!r}; known: {', '.join(IMAGE_DELIVERIES)}") from None


@dataclass(frozen=True)
class Call:
    """One tool call of a batch (see Session.call)."""

    session_id: str
    name: str
    arguments: Union[Mapping[str, Any], str, None] = None
    call_id: str = ""
    tool_timeout: Optional[float] = None
    step: int = 0


def execute_request(call: Call, delivery: str) -> Any:
    return gateway_pb2.ExecuteRequest(
        session_id=call.session_id,
        call=gateway_pb2.ToolCall(
            call_id=call.call_id, name=call.name, arguments_json=encode_arguments(call.arguments)
        ),
        timeout_ms=milliseconds(call.tool_timeout, "tool_timeout"),
        image_delivery=image_delivery(delivery),
        step=call.step,
    )


def create_session_request(
    images: Iterable[Any], rollout_id: str, trajectory_id: str, idle_ttl: Optional[float], seed: Optional[int] = None
) -> Any:
    if seed is not None and not (isinstance(seed, int) and 0 <= seed < 2**32):
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    return gateway_pb2.CreateSessionRequest(
        rollout_id=rollout_id,
        trajectory_id=trajectory_id,
        images=[to_proto_image(image) for image in images],
        idle_ttl_seconds=0 if idle_ttl is None else max(1, round(idle_ttl)),
        seed=seed,
    )


def step_request(
    session_id: str, text: str, format: Union[str, int], delivery: str, tool_timeout: Optional[float], step: int
) -> Any:
    return gateway_pb2.StepRequest(
        session_id=session_id,
        format=model_format(format),
        text=text,
        image_delivery=image_delivery(delivery),
        timeout_ms=milliseconds(tool_timeout, "tool_timeout"),
        step=step,
    )


def infrastructure_error_in(response: Any) -> Optional[ToolplaneError]:
    """The INFRASTRUCTURE error an Execute or Step response reports in its body, if any.

    MODEL errors stay in the result (the model is shown them); an infrastructure
    failure means the observation is not the model's doing, so it is raised like
    a failed RPC (and retried when retryable).
    """
    bodies = [response.result] if isinstance(response, gateway_pb2.ExecuteResponse) else [response, *response.results]
    for body in bodies:
        if body.HasField("error"):
            info = ErrorInfo.from_proto(body.error)
            if info.error_class != "MODEL":
                return info.to_exception()
    return None


async def with_retries(
    method: str,
    attempt: Callable[[Optional[float]], Awaitable[Any]],
    retry: RetryPolicy,
    timeout: Optional[float],
    check: Optional[Callable[[Any], Optional[ToolplaneError]]],
    stateful: bool,
) -> Any:
    """Runs attempt(remaining_seconds) until it succeeds, or fails in a way the policy does not retry."""
    deadline = None if timeout is None else time.monotonic() + timeout
    attempts = 0
    last: Optional[ToolplaneError] = None
    while True:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise deadline_error(method, timeout, attempts, last) from last
        attempts += 1
        try:
            response = await attempt(remaining)
        except ToolplaneError as failure:
            error = failure
        else:
            error = check(response) if check is not None else None
            if error is None:
                return response
        error.attempts = attempts
        remaining = None if deadline is None else deadline - time.monotonic()
        delay = retry.next_delay(error, attempts, remaining, stateful)
        if delay is None:
            raise error
        last = error
        await asyncio.sleep(delay)
