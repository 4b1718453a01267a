"""Typed errors carrying toolplane's error class.

A MODEL error is the model's fault (bad arguments, code that raised or timed
out): show it to the model and continue. An INFRASTRUCTURE error is the
backend's fault (sandbox died, provider down, overloaded): retry or drop the
trajectory, never score it as if the model had erred.

When a whole RPC fails the server sends the class in trailing metadata
(toolplane-error-class, toolplane-retry-after-ms); a failure without that
metadata comes from the transport (connection refused, deadline) and is
INFRASTRUCTURE.
"""

from __future__ import annotations

from typing import Iterable, Optional, Tuple

import grpc

MODEL = "MODEL"
INFRASTRUCTURE = "INFRASTRUCTURE"

ERROR_CLASS_KEY = "toolplane-error-class"
RETRY_AFTER_KEY = "toolplane-retry-after-ms"

# Only these can succeed on a plain retry: the server refused admission or was
# unreachable, so the call did not run. DEADLINE_EXCEEDED is not among them: the
# caller's time is spent and a stateful cell may have run.
RETRYABLE_CODES = frozenset({"RESOURCE_EXHAUSTED", "UNAVAILABLE"})


class ToolplaneError(Exception):
    """A failed toolplane call.

    Attributes:
        error_class: "MODEL" or "INFRASTRUCTURE".
        code: canonical gRPC status name, e.g. "INVALID_ARGUMENT".
        message: the server's message (names the offending field and its limit).
        retry_after: seconds the server asked to wait before a retry, or None.
        attempts: how many times the client tried the call.
    """

    error_class = INFRASTRUCTURE

    def __init__(
        self,
        message: str,
        *,
        code: str = "UNKNOWN",
        retry_after: Optional[float] = None,
        attempts: int = 1,
        server_allows_retry: bool = True,
        from_server: bool = True,
    ) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.message = message
        self.code = code
        self.retry_after = retry_after
        self.attempts = attempts
        self._server_allows_retry = server_allows_retry
        # False when no toolplane server answered (connection refused, client deadline): the call never ran.
        self.from_server = from_server

    @property
    def retryable(self) -> bool:
        """True when the same call may succeed later: an INFRASTRUCTURE refusal or outage not marked final."""
        return self._server_allows_retry and self.error_class == INFRASTRUCTURE and self.code in RETRYABLE_CODES

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, error_class={self.error_class!r}, message={self.message!r})"


class ModelError(ToolplaneError):
    """The model's fault: show the message to the model; the trajectory goes on."""

    error_class = MODEL


class InvalidArgument(ModelError):
    """Arguments or model text the server rejected (INVALID_ARGUMENT)."""


class NotFound(ModelError):
    """A session, tool or image that does not exist (NOT_FOUND)."""


class InfrastructureError(ToolplaneError):
    """The backend's fault: retry or drop the trajectory; never reward or penalise the model for it."""

    error_class = INFRASTRUCTURE


class Overloaded(InfrastructureError):
    """The server refused admission (RESOURCE_EXHAUSTED); retry_after says when to come back."""


class Unavailable(InfrastructureError):
    """A server or sandbox is down or unreachable (UNAVAILABLE)."""


class DeadlineExceeded(InfrastructureError):
    """The RPC deadline passed before the server answered (DEADLINE_EXCEEDED)."""


_MODEL_BY_CODE = {"INVALID_ARGUMENT": InvalidArgument, "NOT_FOUND": NotFound}
_INFRASTRUCTURE_BY_CODE = {
    "RESOURCE_EXHAUSTED": Overloaded,
    "UNAVAILABLE": Unavailable,
    "DEADLINE_EXCEEDED": DeadlineExceeded,
}


def make_error(
    error_class: str,
    code: str,
    message: str,
    retry_after: Optional[float] = None,
    attempts: int = 1,
    server_allows_retry: bool = True,
    from_server: bool = True,
) -> ToolplaneError:
    """The most specific exception for an error class and status name."""
    if error_class == MODEL:
        cls = _MODEL_BY_CODE.get(code, ModelError)
    else:
        cls = _INFRASTRUCTURE_BY_CODE.get(code, InfrastructureError)
    return cls(
        message,
        code=code,
        retry_after=retry_after,
        attempts=attempts,
        server_allows_retry=server_allows_retry,
        from_server=from_server,
    )


def _metadata_value(metadata: Optional[Iterable[Tuple[str, object]]], key: str) -> Optional[str]:
    for name, value in metadata or ():
        if name.lower() == key:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Milliseconds from metadata or a ToolError as seconds; None when absent, zero or malformed."""
    if value is None:
        return None
    try:
        milliseconds = float(value)
    except ValueError:
        return None
    return milliseconds / 1000 if milliseconds > 0 else None


def from_rpc_error(
    code: grpc.StatusCode, details: Optional[str], trailing_metadata: Optional[Iterable[Tuple[str, object]]]
) -> ToolplaneError:
    """Maps a failed RPC (sync or asyncio) to a typed error, reading the class from trailing metadata."""
    declared = _metadata_value(trailing_metadata, ERROR_CLASS_KEY)
    error_class = MODEL if declared == MODEL else INFRASTRUCTURE
    retry_after = parse_retry_after(_metadata_value(trailing_metadata, RETRY_AFTER_KEY))
    return make_error(error_class, code.name, details or "", retry_after, from_server=declared is not None)
