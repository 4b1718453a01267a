"""The verl adapter: BaseTool lifecycle against a scripted gateway, without verl installed."""

from __future__ import annotations

import asyncio
import io
import json

import grpc
import pytest
from conftest import Reply, abort
from PIL import Image

import toolplane.verl as verl_adapter
from toolplane import InfrastructureError
from toolplane._proto import common_pb2, gateway_pb2

SCHEMA = {
    "type": "function",
    "function": {
        "name": "execute_python",
        "description": "Runs Python in the trajectory's kernel.",
        "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
    },
}


def png(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), color).save(buffer, format="PNG")
    return buffer.getvalue()


def result(text: str, *, error_class: int = 0, images=()) -> gateway_pb2.ExecuteResponse:
    tool_result = gateway_pb2.ToolResult(
        call_id="", name="execute_python", text=text, images=[common_pb2.Image(data=data) for data in images]
    )
    if error_class:
        tool_result.error.CopyFrom(common_pb2.ToolError(error_class=error_class, code="ABORTED", message="raised"))
    return gateway_pb2.ExecuteResponse(result=tool_result)


@pytest.fixture
def scripted(fake_gateway):
    fake_gateway.script(
        "CreateSession", *(Reply(gateway_pb2.CreateSessionResponse(session_id=f"s{n}")) for n in range(1, 6))
    )
    fake_gateway.script("CloseSession", Reply(gateway_pb2.CloseSessionResponse()))
    fake_gateway.script(
        "ListTools",
        Reply(
            gateway_pb2.ListToolsResponse(
                tools=[gateway_pb2.ToolSchema(name="execute_python", openai_schema_json=json.dumps(SCHEMA))]
            )
        ),
    )
    return fake_gateway


def test_schema_is_fetched_from_the_gateway_when_not_given(scripted):
    tool = verl_adapter.ToolplaneTool({"address": scripted.target, "tool_name": "execute_python"})
    assert tool.name == "execute_python"
    assert tool.get_openai_tool_schema() == SCHEMA
    assert list(scripted.calls("ListTools")[0].names) == ["execute_python"]


def test_missing_tool_name_and_schema_is_rejected():
    with pytest.raises(ValueError, match="needs config tool_name or a tool_schema"):
        verl_adapter.ToolplaneTool({"address": "127.0.0.1:1"})
    with pytest.raises(ValueError, match="create_returns must be"):
        verl_adapter.ToolplaneTool({"create_returns": "list"}, SCHEMA)


def test_lifecycle_returns_text_images_reward_and_metrics(scripted):
    scripted.script(
        "Execute",
        Reply(result("Code execution result:\nImages:\n<image>", images=[png("red")])),
        Reply(result("Traceback: ZeroDivisionError", error_class=common_pb2.ERROR_CLASS_MODEL)),
    )
    tool = verl_adapter.ToolplaneTool({"address": scripted.target, "error_reward": -0.1}, SCHEMA)

    async def scenario():
        instance_id = await tool.create(create_kwargs={"image": png("blue"), "rollout_id": "r"})
        first = await tool.execute(instance_id, {"code": "plt.show()"})
        second = await tool.execute(instance_id, {"code": "1/0"})
        reward = await tool.calc_reward(instance_id)
        await tool.release(instance_id)
        return instance_id, first, second, reward

    instance_id, (response, reward, metrics), (error_response, error_reward, error_metrics), total = asyncio.run(
        scenario()
    )
    assert isinstance(instance_id, str)
    assert response.text.endswith("<image>")
    assert [image.getpixel((0, 0)) for image in response.image] == [(255, 0, 0)]
    assert (reward, metrics["status"], metrics["images"]) == (0.0, "OK", 1)
    assert error_response.text.startswith("Traceback") and error_response.image is None
    assert (error_reward, error_metrics["status"], error_metrics["error_class"]) == (-0.1, "MODEL_ERROR", "MODEL")
    assert total == pytest.approx(-0.1)
    created = scripted.calls("CreateSession")[0]
    assert created.rollout_id == "r" and len(created.images) == 1
    executed = scripted.calls("Execute")
    assert [(c.session_id, c.call.name, c.step) for c in executed] == [
        ("s1", "execute_python", 1),
        ("s1", "execute_python", 2),
    ]
    assert json.loads(executed[0].call.arguments_json) == {"code": "plt.show()"}
    assert [c.session_id for c in scripted.calls("CloseSession")] == ["s1"]


def test_tools_of_one_trajectory_share_a_session_closed_by_the_last_release(scripted):
    scripted.script("Execute", Reply(result("ok")))
    code = verl_adapter.ToolplaneTool({"address": scripted.target, "create_returns": "tuple"}, SCHEMA)
    search_schema = json.loads(json.dumps(SCHEMA))
    search_schema["function"]["name"] = "search"
    search = verl_adapter.ToolplaneTool({"address": scripted.target}, search_schema)

    async def scenario():
        (code_id, empty), search_id = await asyncio.gather(
            code.create("a", trajectory_id="t-1", images=[png("red")]),
            search.create("b", trajectory_id="t-1", images=[png("red")]),
        )
        await code.execute(code_id, {"code": "x = 1"})
        await search.execute(search_id, {"query": "q"})
        await code.release(code_id)
        closed_after_first = len(scripted.calls("CloseSession"))
        await search.release(search_id)
        return empty, closed_after_first

    empty, closed_after_first = asyncio.run(scenario())
    assert empty.text == "" and empty.image is None
    assert len(scripted.calls("CreateSession")) == 1
    assert scripted.calls("CreateSession")[0].trajectory_id == "t-1"
    assert {c.session_id for c in scripted.calls("Execute")} == {"s1"}
    assert [c.call.name for c in scripted.calls("Execute")] == ["execute_python", "search"]
    assert closed_after_first == 0
    assert len(scripted.calls("CloseSession")) == 1
    assert verl_adapter._SHARED_SESSIONS == {}


def test_keep_session_on_release_leaves_the_kernel_for_the_next_call(scripted):
    scripted.script("Execute", Reply(result("ok")))
    tool = verl_adapter.ToolplaneTool({"address": scripted.target, "keep_session_on_release": True}, SCHEMA)

    async def scenario():
        for _ in range(2):
            instance_id = await tool.create(create_kwargs={"trajectory_id": "t-2"})
            await tool.execute(instance_id, {"code": "x = 1"})
            await tool.release(instance_id)

    asyncio.run(scenario())
    assert scripted.calls("CloseSession") == []
    assert len(scripted.calls("CreateSession")) == 2


def test_infrastructure_failure_raises_so_the_trajectory_is_not_scored(scripted):
    scripted.script("Execute", abort(grpc.StatusCode.INTERNAL, "sandbox died", "INFRASTRUCTURE"))
    tool = verl_adapter.ToolplaneTool({"address": scripted.target, "max_attempts": 1}, SCHEMA)

    async def scenario():
        instance_id = await tool.create()
        try:
            await tool.execute(instance_id, {"code": "1"})
        finally:
            await tool.release(instance_id)

    with pytest.raises(InfrastructureError, match="sandbox died"):
        asyncio.run(scenario())
    assert len(scripted.calls("CloseSession")) == 1


def test_tool_config_lists_the_gateway_tools_for_a_verl_yaml(scripted):
    config = verl_adapter.tool_config(scripted.target, tool_timeout=30)
    assert config == {
        "tools": [
            {
                "class_name": "toolplane.verl.ToolplaneTool",
                "config": {
                    "type": "native",
                    "address": scripted.target,
                    "tool_name": "execute_python",
                    "tool_timeout": 30,
                },
                "tool_schema": SCHEMA,
            }
        ]
    }
