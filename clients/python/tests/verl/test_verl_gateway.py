"""The example tool_configs and rollout settings, in the stand-in of verl's agent loop, against the real system."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
import yaml
from conftest import ROOT, Service, free_port
from PIL import Image, ImageDraw

import toolplane.verl as adapter
from toolplane import ToolplaneClient
from verl.experimental.agent_loop.tool_agent_loop import FunctionCall, MultiTurnConfig, run_prompt
from verl.tools.schemas import OpenAIFunctionToolSchema

EXAMPLES = ROOT / "clients/python/examples/verl"
# Two figures: one call returns two images, which verl's single image slot gets as one tiled picture.
SHOW_CROP_AND_WHOLE = (
    "import matplotlib.pyplot as plt\n"
    "w, h = image_1.size\n"
    "crop = image_1.crop((0, 0, w // 2, h // 2))\n"
    "plt.figure(figsize=(2, 2))\n"
    "plt.imshow(crop)\n"
    "plt.figure(figsize=(4, 2))\n"
    "plt.imshow(image_1)\n"
    "plt.show()"
)


@pytest.fixture(scope="module")
def picture() -> Image.Image:
    image = Image.new("RGB", (320, 240), "white")
    ImageDraw.Draw(image).rectangle((20, 20, 120, 100), fill="red")
    return image


@pytest.fixture
def gateway_env(system, monkeypatch):
    monkeypatch.setenv("TOOLPLANE_GATEWAY_ADDR", system.gateway)
    return system.gateway


def run(scenario):
    async def main():
        try:
            return await scenario
        finally:
            await adapter.close_clients()

    return asyncio.run(main())


def rollout_settings(tool_config: str) -> MultiTurnConfig:
    """multi_turn of examples/verl/rollout.yaml, with another tool_config_path."""
    settings = yaml.safe_load((EXAMPLES / "rollout.yaml").read_text())["actor_rollout_ref"]["rollout"]["multi_turn"]
    fields = set(MultiTurnConfig.__dataclass_fields__)
    assert {"enable", "format"} | fields >= set(settings), "a setting the stand-in does not know"
    kept = {key: value for key, value in settings.items() if key in fields}
    return MultiTurnConfig(**{**kept, "tool_config_path": str(EXAMPLES / tool_config)})


def call(name: str, **arguments) -> FunctionCall:
    return FunctionCall(name, json.dumps(arguments))


class SampleScripts:
    """The model: sample k (numbered by first turn) runs turns(k)[t] at its turn t, then stops."""

    def __init__(self, turns) -> None:
        self.turns = turns
        self.sample_of: dict = {}

    async def __call__(self, agent_data):
        k = self.sample_of.setdefault(agent_data.request_id, len(self.sample_of) + 1)
        script = self.turns(k)
        return script[agent_data.assistant_turns] if agent_data.assistant_turns < len(script) else []


def tool_texts(output) -> list:
    texts = []
    for message in output.messages:
        if message["role"] == "tool":
            content = message["content"]
            texts.append(content if isinstance(content, str) else "".join(i.get("text", "") for i in content))
    return texts


def test_example_tool_configs_carry_the_gateway_schemas_in_the_form_verl_keeps(gateway_env):
    with ToolplaneClient(gateway_env) as client:
        gateway_schemas = {tool.name: tool.schema for tool in client.list_tools()}
    for name in ("deepeyes_v2_tool_config.yaml", "deepeyes_v1_zoom_tool_config.yaml"):
        for entry in yaml.safe_load((EXAMPLES / name).read_text())["tools"]:
            assert entry["class_name"] == "toolplane.verl.ToolplaneTool"
            written = OpenAIFunctionToolSchema.model_validate(entry["tool_schema"]).model_dump(exclude_unset=True)
            expected = adapter.verl_schema(gateway_schemas[entry["config"]["tool_name"]])
            assert written["function"]["parameters"] == expected["function"]["parameters"], name
            assert written["function"]["description"].startswith(expected["function"]["description"]), name


def test_deepeyes_v2_samples_each_keep_their_own_kernel_through_verls_agent_loop(gateway_env, picture):
    def turns(k):
        return [
            [call("code", code=f"x = {k}\n" + SHOW_CROP_AND_WHOLE)],
            [call("code", code="print(x, crop.size)")],
            [call("search", query="red square")],
            [call("image_search")],
        ]

    model = SampleScripts(turns)
    create = {"create_kwargs": {"image": picture, "rollout_id": "verl-deepeyes-v2"}}
    row = {
        "raw_prompt": [{"role": "user", "content": "What is in the top-left corner?"}],
        "tools_kwargs": {"code": create, "search": create, "image_search": create},
    }
    config = rollout_settings("deepeyes_v2_tool_config.yaml")

    async def scenario():
        outputs = await run_prompt(config, model, row, n=3)
        closed = await adapter.close_rollout_async("verl-deepeyes-v2", gateway_env)
        return outputs, closed

    outputs, closed = run(scenario())
    assert closed == 3  # one session per sample, all left open by release(), all closed here
    for output in outputs:
        k = model.sample_of[output.request_id]
        shown, printed, searched, similar = tool_texts(output)
        assert shown.startswith("Code execution result:") and shown.endswith("Images:\n[image 1][image 2]")
        # Same kernel across calls (x, crop), and not another sample's kernel (x = k).
        assert f"{k} (160, 120)" in printed
        assert searched.startswith("A Google search for 'red square' found") and "(truncated)" not in searched
        assert similar.startswith("A Google image search for the image found") and "<image>" not in similar
        assert output.extra_fields["tool_rewards"] == [0.0, 0.0, 0.0, 0.0]
        # verl's single slot holds the two figures (200 x 200 and 400 x 200 px) side by side in cells of the
        # larger one's size, as one RGB picture.
        (tiled,) = output.image_data
        assert tiled.mode == "RGB" and tiled.size == (800, 200)


def test_deepeyes_v1_zoom_through_verls_agent_loop(gateway_env, picture):
    model = SampleScripts(
        lambda k: [
            [call("image_zoom_in_tool", bbox_2d=[20, 20, 120, 100], label="red box")],
            [call("image_zoom_in_tool", bbox_2d=[100, 100, 50, 50])],
        ]
    )
    row = {"raw_prompt": [], "tools_kwargs": {"image_zoom_in_tool": {"create_kwargs": {"image": picture}}}}
    config = rollout_settings("deepeyes_v1_zoom_tool_config.yaml")
    outputs = run(run_prompt(config, model, row, n=2))
    for output in outputs:
        zoomed, invalid = [m for m in output.messages if m["role"] == "tool"]
        assert zoomed["content"] == [{"type": "image"}]  # the gateway's text was only the placeholder
        (crop,) = output.image_data
        assert crop.size == (100, 80) and crop.getpixel((50, 40)) == (255, 0, 0)
        assert invalid["content"] == "Error: ZOOM IN ARGUMENTS ARE INVALID"


def test_a_dead_code_service_is_reported_as_infrastructure_not_scored_as_the_model(
    system, picture, monkeypatch, caplog
):
    """A private gateway and code service (image and search shared with the system), killed mid-trajectory."""
    code = Service("code", free_port(), {})
    gateway = Service(
        "gateway",
        free_port(),
        {
            "TOOLPLANE_CODE_ADDR": code.address,
            "TOOLPLANE_IMAGE_ADDR": f"127.0.0.1:{system.ports['IMAGE']}",
            "TOOLPLANE_SEARCH_ADDR": f"127.0.0.1:{system.ports['SEARCH']}",
        },
    )
    monkeypatch.setenv("TOOLPLANE_GATEWAY_ADDR", gateway.address)

    async def generate(agent_data):
        turn = agent_data.assistant_turns
        if turn == 1:
            code.kill()
        script = [[call("code", code="x = 1\nprint(x)")], [call("code", code="print(x)")], [call("search", query="x")]]
        return script[turn] if turn < len(script) else []

    config = rollout_settings("deepeyes_v2_tool_config.yaml")
    row = {"raw_prompt": [], "tools_kwargs": {"code": {"create_kwargs": {"image": picture}}}}
    try:
        with caplog.at_level(logging.ERROR, logger="toolplane.verl"):
            (output,) = run(run_prompt(config, generate, row, n=1))
    finally:
        gateway.stop()
        code.kill()
    ran, failed, searched = tool_texts(output)
    assert "1" in ran
    assert failed == adapter.INFRASTRUCTURE_TEXT.format(code="UNAVAILABLE")
    assert searched.startswith("A Google search for 'x'")  # the session itself is still there
    assert output.extra_fields["tool_rewards"] == [0.0, 0.0, 0.0]  # infrastructure_reward defaults to 0.0
    (line,) = [record.getMessage() for record in caplog.records]
    assert f"trajectory={output.request_id}" in line and "code=UNAVAILABLE" in line
