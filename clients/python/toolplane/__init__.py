"""toolplane: the Python client of the toolplane gateway, for model servers and RL trainers.

    from toolplane import ToolplaneClient
    with ToolplaneClient("127.0.0.1:50051") as client, client.session([image]) as session:
        step = session.step(model_text)          # DeepEyesV2 format by default
        append(step.observation, step.pil_images())
"""

from ._core import NO_RETRY, Call, RetryPolicy
from .aio import AsyncSession, AsyncToolplaneClient
from .client import Session, ToolplaneClient
from .errors import (
    INFRASTRUCTURE,
    MODEL,
    DeadlineExceeded,
    InfrastructureError,
    InvalidArgument,
    ModelError,
    NotFound,
    Overloaded,
    ToolplaneError,
    Unavailable,
)
from .images import ImageRef, ToolImage
from .results import ErrorInfo, Outcome, Status, StepResult, Timing, Tool, ToolResult
from .stream import WorkerStream

__all__ = [
    "INFRASTRUCTURE",
    "MODEL",
    "NO_RETRY",
    "AsyncSession",
    "AsyncToolplaneClient",
    "Call",
    "DeadlineExceeded",
    "ErrorInfo",
    "ImageRef",
    "InfrastructureError",
    "InvalidArgument",
    "ModelError",
    "NotFound",
    "Outcome",
    "Overloaded",
    "RetryPolicy",
    "Session",
    "Status",
    "StepResult",
    "Timing",
    "Tool",
    "ToolImage",
    "ToolResult",
    "ToolplaneClient",
    "ToolplaneError",
    "Unavailable",
    "WorkerStream",
]
