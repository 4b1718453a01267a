"""The verl adapter inside the stand-in of verl (b178a3c) against a scripted gateway.

Runs under pydantic 2 with the stand-in importable as `verl` (see run.py), so toolplane.verl subclasses the
stand-in's BaseTool and builds the stand-in's ToolResponse, whose validator is verl's.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging

import grpc
import pytest
from conftest import Reply, abort
from PIL import Image
from pydantic import ValidationError

import toolplane.verl as adapter
from toolplane._proto import common_pb2, gateway_pb2
from verl import VERL_COMMIT
from verl.experimental.agent_loop.tool_agent_loop import FunctionCall, MultiTurnConfig, apply_chat_template, run_prompt
from verl.tools.base_tool import BaseTool
from verl.tools.schemas import OpenAIFunctionToolSchema, ToolResponse

CODE_SCHEMA = {
    "type": "function",
    "function": {
        "name": "code",
        "description": "Runs Python in the trajectory's kernel.",
        "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
    },
}
ZOOM_SCHEMA = {
    "type": "function",
    "function": {
        "name": "image_zoom_in_tool",
        "description": "Zoom in.",
        "parameters": {
            "type": "object",
            "properties": {
                "bbox_2d": {
                    "type": "array",
                    "items": {"type": "number"},
                    "minItems": 4,
                    "maxItems": 4,
                    "description": "The box [x1, y1, x2, y2].",
                },
                "label": {"type": "string", "description": "What is in the box."},
            },
            "required": ["bbox_2d"],
        },
    },
}


def png(color: str, size=(32, 32), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def result(text: str, *, error_class: int = 0, code: str = "ABORTED", images=()) -> gateway_pb2.ExecuteResponse:
    tool_result = gateway_pb2.ToolResult(text=text, images=[common_pb2.Image(data=data) for data in images])
    if error_class:
        tool_result.error.CopyFrom(common_pb2.ToolError(error_class=error_class, code=code, message="raised"))
    return gateway_pb2.ExecuteResponse(result=tool_result)


def run(scenario):
    """asyncio.run, closing the adapter's channels of the loop before it ends."""

    async def main():
        try:
            return await scenario
        finally:
            await adapter.close_clients()

    return asyncio.run(main())


def call(name: str, **arguments) -> FunctionCall:
    return FunctionCall(name, json.dumps(arguments))


def scripted_model(turns):
    """The same turns for every sample: turns[k] are the calls of assistant turn k (then the trajectory ends)."""

    async def generate(agent_data):
        k = agent_data.assistant_turns
        return turns[k] if k < len(turns) else []

    return generate


def write_tool_config(tmp_path, *tools) -> str:
    import yaml

    path = tmp_path / "tool_config.yaml"
    path.write_text(yaml.safe_dump({"tools": list(tools)}))
    return str(path)


def tool_entry(schema, **config):
    return {"class_name": "toolplane.verl.ToolplaneTool", "config": {"type": "native", **config}, "tool_schema": schema}


@pytest.fixture(autouse=True)
def fresh_adapter_state():
    adapter._TRAJECTORIES.clear()
    adapter._FORGOTTEN.clear()
    adapter._SCHEMAS.clear()
    adapter._ENCODED.clear()
    adapter._warned_without_trajectory = False
    yield


@pytest.fixture
def gateway(fake_gateway, monkeypatch):
    fake_gateway.script(
        "CreateSession", *(Reply(gateway_pb2.CreateSessionResponse(session_id=f"s{n}")) for n in range(1, 20))
    )
    fake_gateway.script("CloseSession", Reply(gateway_pb2.CloseSessionResponse()))
    fake_gateway.script("CloseRollout", Reply(gateway_pb2.CloseRolloutResponse(closed_sessions=2)))
    monkeypatch.setenv("TOOLPLANE_GATEWAY_ADDR", fake_gateway.target)
    return fake_gateway


def test_the_stand_in_is_pinned_and_keeps_verls_validator():
    assert VERL_COMMIT == "b178a3cd56f58b2d502255daba591e92833930a7"
    with pytest.raises(ValidationError, match="Image must be a list"):
        ToolResponse(text="x", image=None)
    with pytest.raises(ValidationError, match="Video must be a list"):
        ToolResponse(video=None)
    assert ToolResponse(text="x").image is None and ToolResponse().is_empty()
    kept = OpenAIFunctionToolSchema.model_validate(ZOOM_SCHEMA).model_dump(exclude_unset=True, exclude_none=True)
    assert kept["function"]["parameters"]["properties"]["bbox_2d"] == {
        "type": "array",
        "description": "The box [x1, y1, x2, y2].",
    }
    with pytest.raises(ValueError, match="1 image slot"):
        apply_chat_template([{"role": "tool", "content": [{"type": "image"}]}], [object(), object()])


def test_adapter_subclasses_verls_base_tool_and_create_returns_an_empty_valid_response(gateway):
    gateway.script("Execute", Reply(result("ok")))
    tool = adapter.ToolplaneTool({"type": "native"}, OpenAIFunctionToolSchema.model_validate(CODE_SCHEMA))
    assert isinstance(tool, BaseTool) and tool.name == "code"
    assert isinstance(tool.get_openai_tool_schema(), OpenAIFunctionToolSchema)
    instance_id, response = run(tool.create(create_kwargs={"image": png("red")}))
    assert isinstance(response, ToolResponse) and response.model_fields_set == set()
    assert gateway.calls("CreateSession") == []  # opened by the first execute, which knows the trajectory
    # A datasets Image feature ({"bytes", "path"}) is accepted as an input image too.
    executed, _, _ = run(run_create_execute(tool, {"images": [{"bytes": png("red"), "path": None}]}, AgentStub("t")))
    assert executed.text == "ok" and len(gateway.calls("CreateSession")[0].images) == 1


def test_n_samples_sharing_tools_kwargs_get_one_session_each_reused_across_calls(gateway, tmp_path):
    gateway.script("Execute", Reply(result("ok")))
    config = MultiTurnConfig(tool_config_path=write_tool_config(tmp_path, tool_entry(CODE_SCHEMA)))
    model = scripted_model([[call("code", code="x = 1")], [call("code", code="print(x)")], [call("code", code="x")]])
    shared = Image.new("RGB", (64, 48), "red")
    row = {
        "raw_prompt": [{"role": "user", "content": "q"}],
        "tools_kwargs": {"code": {"create_kwargs": {"image": shared}}},
    }

    outputs = run(run_prompt(config, model, row, n=4))

    opened = gateway.calls("CreateSession")
    assert sorted(request.trajectory_id for request in opened) == sorted(output.request_id for output in outputs)
    assert all(len(request.images) == 1 and request.idle_ttl_seconds == 900 for request in opened)
    assert list(adapter._ENCODED) == [id(shared)]  # the shared input image was encoded once for the 4 samples
    assert Image.open(io.BytesIO(opened[0].images[0].data)).size == (64, 48)
    session_of = {request.trajectory_id: f"s{n}" for n, request in enumerate(opened, 1)}
    executed = gateway.calls("Execute")
    assert len(executed) == 12
    for output in outputs:
        session = session_of[output.request_id]
        assert [request.step for request in executed if request.session_id == session] == [1, 2, 3]
    assert gateway.calls("CloseSession") == []  # release() keeps the kernel for the trajectory's next call
    assert all(output.extra_fields["tool_rewards"] == [0.0, 0.0, 0.0] for output in outputs)


def test_parallel_calls_of_one_trajectory_open_its_session_once(gateway, tmp_path):
    gateway.script("Execute", Reply(result("ok")))
    search = json.loads(json.dumps(CODE_SCHEMA).replace('"code"', '"search"'))
    path = write_tool_config(tmp_path, tool_entry(CODE_SCHEMA), tool_entry(search))
    config = MultiTurnConfig(tool_config_path=path, max_parallel_calls=2)
    model = scripted_model([[call("code", code="x = 1"), call("search", search="q")]])
    (output,) = run(run_prompt(config, model, {"raw_prompt": [], "tools_kwargs": {}}, n=1))
    assert [request.trajectory_id for request in gateway.calls("CreateSession")] == [output.request_id]
    assert sorted(request.call.name for request in gateway.calls("Execute")) == ["code", "search"]


def test_images_reach_verl_as_one_rgb_slot_and_the_text_has_no_placeholders(gateway, tmp_path):
    gateway.script(
        "Execute",
        Reply(result("Code execution result:\nstdout:\n```\nhi\n```\n\nImages:\n<image>", images=[png("red")])),
        Reply(
            result(
                "Found:\n1. <image>\n[cat]\n2. <image>\n[dog]\n3. <image>\n[cow]",
                images=[png("red", (40, 30)), png((0, 0, 255, 0), (20, 20), "RGBA"), png("green", (30, 40))],
            )
        ),
        Reply(result("x = 1")),
    )
    path = write_tool_config(tmp_path, tool_entry(CODE_SCHEMA))
    config = MultiTurnConfig(tool_config_path=path, max_tool_response_length=4096)
    model = scripted_model([[call("code", code="plt.show()")], [call("code", code="show 3")], [call("code", code="x")]])
    (output,) = run(run_prompt(config, model, {"raw_prompt": [], "tools_kwargs": {}}, n=1))

    one, three, none = [message for message in output.messages if message["role"] == "tool"]
    assert one["content"][0] == {"type": "image"}
    assert one["content"][1]["text"] == "Code execution result:\nstdout:\n```\nhi\n```\n\nImages:"
    assert three["content"][1]["text"] == "Found:\n1. [image 1]\n[cat]\n2. [image 2]\n[dog]\n3. [image 3]\n[cow]"
    assert none == {"role": "tool", "content": "x = 1"}
    first, tiled = output.image_data
    assert first.mode == "RGB" and first.getpixel((0, 0)) == (255, 0, 0)
    # Three images tiled two per row in cells of the largest width and height, read row by row.
    assert tiled.mode == "RGB" and tiled.size == (80, 80)
    assert tiled.getpixel((0, 0)) == (255, 0, 0)
    assert tiled.getpixel((41, 1)) == (255, 255, 255)  # the transparent image over white
    assert tiled.getpixel((1, 41)) == (0, 128, 0)


def test_multiple_images_first_and_list(gateway):
    gateway.script("Execute", Reply(result("<image><image>", images=[png("red"), png("blue")])))
    first = adapter.ToolplaneTool({"multiple_images": "first"}, CODE_SCHEMA)
    listed = adapter.ToolplaneTool({"multiple_images": "list"}, CODE_SCHEMA)

    async def scenario():
        responses = []
        for tool, trajectory in ((first, "t-first"), (listed, "t-list")):
            instance_id, _ = await tool.create()
            responses.append(await tool.execute(instance_id, {"code": "1"}, agent_data=AgentStub(trajectory)))
            await tool.release(instance_id)
        return responses

    (shown_first, _, metrics), (shown_all, _, _) = run(scenario())
    assert len(shown_first.image) == 1 and shown_first.text == ""
    assert (metrics["images_returned"], metrics["images_shown"]) == (2, 1)
    assert len(shown_all.image) == 2
    with pytest.raises(ValueError, match="multiple_images must be one of tile, first, list"):
        adapter.ToolplaneTool({"multiple_images": "grid"}, CODE_SCHEMA)


async def run_create_execute(tool, create_kwargs, agent_data):
    instance_id, _ = await tool.create(create_kwargs=create_kwargs)
    try:
        return await tool.execute(instance_id, {"code": "1"}, agent_data=agent_data)
    finally:
        await tool.release(instance_id)


class AgentStub:
    """What the adapter reads of verl's AgentData."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.extra_fields: dict = {}


def test_model_errors_are_shown_and_rewarded_as_configured(gateway):
    gateway.script(
        "Execute",
        Reply(result("Traceback: ZeroDivisionError", error_class=common_pb2.ERROR_CLASS_MODEL)),
        abort(grpc.StatusCode.INVALID_ARGUMENT, "arguments.code: expected a string", "MODEL"),
    )
    tool = adapter.ToolplaneTool({"error_reward": -0.1}, CODE_SCHEMA)

    async def scenario():
        instance_id, _ = await tool.create()
        first = await tool.execute(instance_id, {"code": "1/0"}, agent_data=AgentStub("t-model"))
        second = await tool.execute(instance_id, {"code": 1}, agent_data=AgentStub("t-model"))
        return first, second, await tool.calc_reward(instance_id)

    (shown, reward, metrics), (refused, refused_reward, refused_metrics), total = run(scenario())
    assert shown.model_fields_set == {"text"} and shown.text.startswith("Traceback")
    assert (reward, metrics["status"], metrics["error_class"], metrics["infrastructure_error"]) == (
        -0.1,
        "MODEL_ERROR",
        "MODEL",
        0,
    )
    assert refused.text == "Error: arguments.code: expected a string" and refused_reward == -0.1
    assert refused_metrics["status"] == "MODEL_ERROR" and total == pytest.approx(-0.2)


def test_infrastructure_failures_are_retried_then_reported_where_a_trainer_can_filter(gateway, tmp_path, caplog):
    gateway.script(
        "Execute",
        abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "code queue full", "INFRASTRUCTURE", retry_after_ms=20),
        Reply(result("first cell ran")),
        Reply(result("", error_class=common_pb2.ERROR_CLASS_INFRASTRUCTURE, code="FAILED_PRECONDITION")),
    )
    entry = tool_entry(CODE_SCHEMA, infrastructure_reward=-7.0)
    config = MultiTurnConfig(tool_config_path=write_tool_config(tmp_path, entry))
    model = scripted_model([[call("code", code="x = 1")], [call("code", code="print(x)")], [call("code", code="x")]])
    before = adapter.counters()

    with caplog.at_level(logging.ERROR, logger="toolplane.verl"):
        (output,) = run(run_prompt(config, model, {"raw_prompt": [], "tools_kwargs": {}}, n=1))

    texts = [message["content"] for message in output.messages if message["role"] == "tool"]
    assert texts[0] == "first cell ran"  # the overload was retried after the server's hint
    lost = adapter.INFRASTRUCTURE_TEXT.format(code="FAILED_PRECONDITION")
    # The code session's state is gone: the third call is not run on a fresh kernel, it reports the same failure.
    assert texts[1:] == [lost, lost]
    assert len(gateway.calls("Execute")) == 3
    # The per-sample value that reaches verl's reward function (extra_info["tool_rewards"]).
    assert output.extra_fields["tool_rewards"] == [0.0, -7.0, -7.0]
    after = adapter.counters()
    assert after["infrastructure_errors"] - before["infrastructure_errors"] == 2
    failures = [record.getMessage() for record in caplog.records]
    assert len(failures) == 2 and all(f"trajectory={output.request_id}" in line for line in failures)
    assert "code=FAILED_PRECONDITION" in failures[0]


def test_infrastructure_failure_metrics_and_agent_data(gateway, caplog):
    gateway.script("CreateSession", abort(grpc.StatusCode.UNAVAILABLE, "gateway restarting", "INFRASTRUCTURE"))
    tool = adapter.ToolplaneTool({"max_attempts": 2, "timeout": 5}, CODE_SCHEMA)
    agent_data = AgentStub("t-infra")

    async def scenario():
        instance_id, _ = await tool.create()
        return await tool.execute(instance_id, {"code": "1"}, agent_data=agent_data)

    response, reward, metrics = run(scenario())
    assert len(gateway.calls("CreateSession")) == 2  # retried within the deadline
    assert response.model_fields_set == {"text"} and reward == 0.0
    assert metrics["status"] == "INFRA_ERROR" and metrics["infrastructure_error"] == 1
    assert metrics["trajectory_id"] == "t-infra"
    assert agent_data.extra_fields["toolplane_infrastructure_errors"] == [
        {"tool": "code", "code": "UNAVAILABLE", "message": "gateway restarting"}
    ]
    # A session that never opened ran nothing: the trajectory's next call may open it.
    assert adapter._TRAJECTORIES == {}


def test_an_idle_trajectory_called_again_is_reported_not_given_a_fresh_kernel(gateway, monkeypatch):
    gateway.script("Execute", Reply(result("ok")))
    tool = adapter.ToolplaneTool({"idle_ttl": 60}, CODE_SCHEMA)
    clock = [1000.0]
    monkeypatch.setattr(adapter.time, "monotonic", lambda: clock[0])

    async def one_call(trajectory):
        instance_id, _ = await tool.create()
        try:
            return await tool.execute(instance_id, {"code": "1"}, agent_data=AgentStub(trajectory))
        finally:
            await tool.release(instance_id)

    async def scenario():
        await one_call("t-slow")
        clock[0] += 61
        return await one_call("t-slow")

    response, _, metrics = run(scenario())
    assert metrics["infrastructure_error"] == 1 and "NOT_FOUND" in response.text
    assert len(gateway.calls("CreateSession")) == 1


def test_close_rollout_closes_on_the_gateway_and_forgets_locally(gateway):
    gateway.script("Execute", Reply(result("ok")))
    tool = adapter.ToolplaneTool({"rollout_id": "step-7"}, CODE_SCHEMA)

    async def scenario():
        for trajectory in ("a", "b"):
            instance_id, _ = await tool.create()
            await tool.execute(instance_id, {"code": "1"}, agent_data=AgentStub(trajectory))
            await tool.release(instance_id)

    run(scenario())
    assert {request.rollout_id for request in gateway.calls("CreateSession")} == {"step-7"}
    assert adapter.close_rollout("step-7") == 2
    assert [request.rollout_id for request in gateway.calls("CloseRollout")] == ["step-7"]
    assert adapter._TRAJECTORIES == {}


def test_verl_without_agent_data_runs_each_call_in_its_own_session(gateway, caplog):
    gateway.script("Execute", Reply(result("ok")))
    tool = adapter.ToolplaneTool({}, CODE_SCHEMA)

    async def scenario():
        for _ in range(2):
            instance_id, _ = await tool.create()
            await tool.execute(instance_id, {"code": "1"})  # verl 0.6.x passes no agent_data
            await tool.release(instance_id)

    with caplog.at_level(logging.WARNING, logger="toolplane.verl"):
        run(scenario())
    assert [request.trajectory_id for request in gateway.calls("CreateSession")] == ["", ""]
    assert [request.session_id for request in gateway.calls("CloseSession")] == ["s1", "s2"]
    (warning,) = [record.getMessage() for record in caplog.records]  # once per process
    assert "no agent_data (verl < 0.7.0)" in warning


def test_schemas_fetched_from_the_gateway_keep_their_sizes_in_words(gateway, tmp_path):
    gateway.script(
        "ListTools",
        Reply(
            gateway_pb2.ListToolsResponse(
                tools=[gateway_pb2.ToolSchema(name="image_zoom_in_tool", openai_schema_json=json.dumps(ZOOM_SCHEMA))]
            )
        ),
    )
    entry = tool_entry(None, tool_name="image_zoom_in_tool")
    config = MultiTurnConfig(tool_config_path=write_tool_config(tmp_path, entry))
    from verl.experimental.agent_loop.tool_agent_loop import ToolAgentLoop

    first, second = ToolAgentLoop(config, scripted_model([])), ToolAgentLoop(config, scripted_model([]))
    (schema,) = first.tool_schemas
    assert schema["function"]["parameters"]["properties"]["bbox_2d"] == {
        "type": "array",
        "description": "The box [x1, y1, x2, y2]. An array of exactly 4 numbers.",
    }
    assert second.tool_schemas == first.tool_schemas
    assert len(gateway.calls("ListTools")) == 1  # verl builds tools per sample: fetched once per process


def test_verl_schema_words():
    spec = {
        "function": {
            "name": "f",
            "description": "d",
            "parameters": {
                "type": "object",
                "properties": {
                    "ops": {"type": "array", "items": {"type": "object"}, "minItems": 1, "maxItems": 32},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "k": {"type": "integer", "minimum": 1, "maximum": 10, "description": "How many."},
                    "mode": {"type": "integer", "enum": [1, 2]},
                    "seed": {"type": ["integer", "null"]},
                },
            },
        },
        "type": "function",
    }
    properties = adapter.verl_schema(spec)["function"]["parameters"]["properties"]
    assert properties["ops"] == {"type": "array", "description": "An array of 1 to 32 objects."}
    assert properties["tags"]["description"] == "An array of strings."
    assert properties["k"]["description"] == "How many. From 1 to 10."
    assert properties["mode"]["enum"] == ["1", "2"]
    assert properties["seed"] == {"type": "integer", "description": "Or null."}
    validated = OpenAIFunctionToolSchema.model_validate(adapter.verl_schema(spec))
    assert validated.function.parameters.required == []
