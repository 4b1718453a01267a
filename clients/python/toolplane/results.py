"""Results as small dataclasses, parsed from the gateway's messages."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .errors import INFRASTRUCTURE, MODEL, ToolplaneError, make_error
from .images import ToolImage
from ._proto import common_pb2, gateway_pb2


class Status(str, enum.Enum):
    """Outcome of one call: fine, the model's fault (shown to it), or the backend's fault (do not score)."""

    OK = "OK"
    MODEL_ERROR = "MODEL_ERROR"
    INFRA_ERROR = "INFRA_ERROR"


class Outcome(str, enum.Enum):
    """What a Step found in the model's text."""

    TOOL_CALLED = "TOOL_CALLED"
    ANSWER = "ANSWER"
    PARSE_ERROR = "PARSE_ERROR"
    NO_CALL = "NO_CALL"
    # The format's reference environment ends the episode here (see StepResult.episode_end_reason).
    EPISODE_END = "EPISODE_END"


@dataclass(frozen=True)
class ErrorInfo:
    """An in-band error (common.v1.ToolError) of one call."""

    error_class: str
    code: str
    message: str
    retryable: bool = False
    retry_after: Optional[float] = None

    @classmethod
    def from_proto(cls, message: Any) -> "ErrorInfo":
        error_class = MODEL if message.error_class == common_pb2.ERROR_CLASS_MODEL else INFRASTRUCTURE
        retry_after = message.retry_after_ms / 1000 if message.retry_after_ms else None
        return cls(error_class, message.code or "UNKNOWN", message.message, message.retryable, retry_after)

    def to_exception(self, attempts: int = 1) -> ToolplaneError:
        return make_error(self.error_class, self.code, self.message, self.retry_after, attempts, self.retryable)


@dataclass(frozen=True)
class Timing:
    """Where the server's time went, in milliseconds."""

    queue_ms: float = 0.0
    execute_ms: float = 0.0
    total_ms: float = 0.0


def _error(message: Any) -> Optional[ErrorInfo]:
    return ErrorInfo.from_proto(message.error) if message.HasField("error") else None


def _status(message: Any, error: Optional[ErrorInfo]) -> Status:
    # ToolResult/StepResponse carry an explicit status on gateways that have it;
    # older ones only have the error, from which the status follows.
    status_field = message.DESCRIPTOR.fields_by_name.get("status")
    if status_field is not None and status_field.enum_type is not None:
        number = getattr(message, "status")
        if number:
            name = status_field.enum_type.values_by_number[number].name
            if "INFRA" in name:
                return Status.INFRA_ERROR
            if "MODEL" in name:
                return Status.MODEL_ERROR
            if name.endswith("OK"):
                return Status.OK
    if error is None:
        return Status.OK
    return Status.MODEL_ERROR if error.error_class == MODEL else Status.INFRA_ERROR


@dataclass(frozen=True)
class ToolResult:
    """The result of one tool call."""

    call_id: str
    name: str
    text: str
    images: List[ToolImage]
    status: Status
    error: Optional[ErrorInfo] = None
    output: Optional[Dict[str, Any]] = None
    timing: Timing = field(default_factory=Timing)

    @classmethod
    def from_proto(cls, message: Any) -> "ToolResult":
        error = _error(message)
        output = json.loads(message.output_json) if message.output_json else None
        timing = Timing(message.timing.queue_ms, message.timing.execute_ms, message.timing.total_ms)
        images = [ToolImage.from_proto(image) for image in message.images]
        return cls(
            message.call_id, message.name, message.text, images, _status(message, error), error, output, timing
        )

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    @property
    def error_class(self) -> Optional[str]:
        """'MODEL', 'INFRASTRUCTURE' or None when the call succeeded."""
        return None if self.error is None else self.error.error_class

    def pil_images(self) -> List[Any]:
        return [image.to_pil() for image in self.images]


_OUTCOMES = {
    gateway_pb2.STEP_OUTCOME_TOOL_CALLED: Outcome.TOOL_CALLED,
    gateway_pb2.STEP_OUTCOME_ANSWER: Outcome.ANSWER,
    gateway_pb2.STEP_OUTCOME_PARSE_ERROR: Outcome.PARSE_ERROR,
    gateway_pb2.STEP_OUTCOME_NO_CALL: Outcome.NO_CALL,
    gateway_pb2.STEP_OUTCOME_EPISODE_END: Outcome.EPISODE_END,
}


def _episode_end_reason(message: Any) -> str:
    """'NO_CODE', 'NO_TOOL_CALL', 'CODE_FAILED', 'SEARCH_FAILED', or '' (also from gateways without the field)."""
    field = message.DESCRIPTOR.fields_by_name.get("episode_end_reason")
    if field is None or not message.episode_end_reason:
        return ""
    return field.enum_type.values_by_number[message.episode_end_reason].name.replace("EPISODE_END_REASON_", "")


@dataclass(frozen=True)
class StepResult:
    """What to append after one model turn: observation text plus its images, or the answer."""

    outcome: Outcome
    observation: str
    images: List[ToolImage]
    results: List[ToolResult]
    answer: str
    status: Status
    error: Optional[ErrorInfo] = None
    episode_end_reason: str = ""

    @classmethod
    def from_proto(cls, message: Any) -> "StepResult":
        error = _error(message)
        outcome = _OUTCOMES.get(message.outcome)
        if outcome is None:
            raise ValueError(f"gateway returned an unknown step outcome {message.outcome}")
        return cls(
            outcome,
            message.observation,
            [ToolImage.from_proto(image) for image in message.images],
            [ToolResult.from_proto(result) for result in message.results],
            message.answer,
            _status(message, error),
            error,
            _episode_end_reason(message),
        )

    @property
    def done(self) -> bool:
        """The episode ends: the model answered, or the reference environment ends it here."""
        return self.outcome in (Outcome.ANSWER, Outcome.EPISODE_END)

    @property
    def error_class(self) -> Optional[str]:
        return None if self.error is None else self.error.error_class

    def pil_images(self) -> List[Any]:
        return [image.to_pil() for image in self.images]


@dataclass(frozen=True)
class Tool:
    """A tool the gateway offers, with its OpenAI function schema parsed."""

    name: str
    description: str
    schema: Dict[str, Any]

    @classmethod
    def from_proto(cls, message: Any) -> "Tool":
        return cls(message.name, message.description, json.loads(message.openai_schema_json))
