"""StepResult read from the gateway's StepResponse: outcomes, including a reference episode end."""

from __future__ import annotations

from toolplane._proto import common_pb2, gateway_pb2
from toolplane.results import Outcome, Status, StepResult


def test_episode_end_carries_its_reason_and_ends_the_episode():
    message = gateway_pb2.StepResponse(
        outcome=gateway_pb2.STEP_OUTCOME_EPISODE_END,
        observation="Code execution error",
        status=gateway_pb2.RESULT_STATUS_INFRA_ERROR,
        episode_end_reason=gateway_pb2.EPISODE_END_REASON_CODE_FAILED,
        error=common_pb2.ToolError(error_class=common_pb2.ERROR_CLASS_INFRASTRUCTURE, code="UNAVAILABLE"),
    )
    step = StepResult.from_proto(message)
    assert step.outcome is Outcome.EPISODE_END
    assert step.done
    assert step.episode_end_reason == "CODE_FAILED"
    assert step.observation == "Code execution error"
    assert step.status is Status.INFRA_ERROR


def test_other_outcomes_have_no_episode_end_reason():
    step = StepResult.from_proto(gateway_pb2.StepResponse(outcome=gateway_pb2.STEP_OUTCOME_NO_CALL))
    assert step.outcome is Outcome.NO_CALL
    assert not step.done
    assert step.episode_end_reason == ""
