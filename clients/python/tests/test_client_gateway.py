"""The client against the real system (gateway + image + code + search) on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import subprocess
import sys
import time

import pytest
from conftest import CLIENT_DIR, ROOT, Service, free_port
from PIL import Image, ImageDraw

from toolplane import (
    AsyncToolplaneClient,
    InfrastructureError,
    ModelError,
    Outcome,
    RetryPolicy,
    Status,
    ToolplaneClient,
    Unavailable,
)

FENCE = "`" * 3


def code_turn(source: str, thought: str = "Let me look closer.") -> str:
    """A DeepEyesV2 code turn as the model emits it, stop string included."""
    return f"<think>{thought}</think>\n<code>\n{FENCE}python\n{source}\n{FENCE}\n</code>"


CROP_AND_SHOW = (
    "import matplotlib.pyplot as plt\n"
    "w, h = image_1.size\n"
    "crop = image_1.crop((0, 0, w // 2, h // 2))\n"
    "plt.imshow(crop)\n"
    "plt.axis('off')\n"
    "plt.show()"
)


@pytest.fixture(scope="module")
def picture() -> Image.Image:
    image = Image.new("RGB", (320, 240), "white")
    ImageDraw.Draw(image).rectangle((20, 20, 120, 100), fill="red")
    return image


@pytest.fixture
def client(system):
    with ToolplaneClient(system.gateway, timeout=120) as connected:
        yield connected


def test_tools_are_listed_with_openai_schemas(client):
    tools = {tool.name: tool for tool in client.list_tools()}
    assert {"code", "search", "image_search", "image_zoom_in_tool"} <= set(tools)
    for tool in tools.values():
        assert tool.schema["type"] == "function"
        assert tool.schema["function"]["name"] == tool.name
        assert tool.schema["function"]["parameters"]["type"] == "object"
    assert tools["code"].schema["function"]["parameters"]["required"] == ["code"]
    assert [tool.name for tool in client.list_tools(["search"])] == ["search"]


def test_deepeyes_v2_trajectory(client, picture):
    with client.session([picture], rollout_id="py-trajectory") as session:
        assert len(session.image_sha256) == 1

        shown = session.step(code_turn(CROP_AND_SHOW, "The red label is small; crop the top-left quarter."))
        assert shown.outcome is Outcome.TOOL_CALLED
        assert shown.status is Status.OK and shown.error is None
        assert shown.observation.startswith("Code execution result:\nstdout:\n")
        assert shown.observation.count("<image>") == len(shown.images) == 1
        figure = shown.pil_images()[0]
        assert figure.size == (shown.images[0].width, shown.images[0].height)
        # The figure shows the crop: mostly the red rectangle, drawn by matplotlib in red.
        colors = figure.convert("RGB").getcolors(figure.width * figure.height)
        red = sum(count for count, (r, g, b) in colors if r > 200 and g < 60 and b < 60)
        assert red > figure.width * figure.height // 10

        reused = session.step(code_turn("print('crop', crop.size)\nprint(w * h)", "Check the crop's size."))
        assert reused.status is Status.OK
        assert "crop (160, 120)" in reused.observation and "76800" in reused.observation
        assert reused.images == []

        raised = session.step(code_turn("ratio = w / 0"))
        assert raised.outcome is Outcome.TOOL_CALLED
        assert raised.status is Status.MODEL_ERROR and raised.error_class == "MODEL"
        assert "ZeroDivisionError" in raised.observation

        searched = session.step('<tool_call>\n{"name": "search", "arguments": {"query": "red square"}}\n</tool_call>')
        assert searched.status is Status.OK
        assert searched.observation.startswith("<tool_response>\nA Google search for 'red square' found")
        assert searched.observation.rstrip().endswith("</tool_response>")

        malformed = session.step("<tool_call>\n{not json\n</tool_call>")
        assert malformed.outcome is Outcome.PARSE_ERROR
        assert malformed.status is Status.MODEL_ERROR
        assert "Invalid tool call format" in malformed.observation

        answered = session.step("<think>It is a red square.</think>\n<answer>A red square</answer>")
        assert answered.done and answered.answer == "A red square"
        assert answered.observation == ""


def test_async_trajectories_run_concurrently_and_images_can_travel_by_reference(system, picture):
    async def trajectory(client: AsyncToolplaneClient, index: int):
        async with client.session([picture], rollout_id="py-async", trajectory_id=f"py-async-{index}") as session:
            first = await session.step(code_turn(f"n = {index}\n" + CROP_AND_SHOW), image_delivery="reference")
            second = await session.step(code_turn("print('n =', n)"))
            return first, second

    async def scenario():
        async with AsyncToolplaneClient(system.gateway, timeout=120) as client:
            steps = await asyncio.gather(*(trajectory(client, index) for index in range(3)))
            fetched = await client.get_image(steps[0][0].images[0].sha256)
            return steps, fetched

    steps, fetched = asyncio.run(scenario())
    for index, (first, second) in enumerate(steps):
        assert first.status is Status.OK
        assert [image.data for image in first.images] == [None]
        assert f"n = {index}" in second.observation, "each trajectory has its own kernel"
    assert hashlib.sha256(fetched.data).hexdigest() == fetched.sha256 == steps[0][0].images[0].sha256
    assert fetched.to_pil().size == (fetched.width, fetched.height)


def test_trajectories_multiplexed_on_one_connect_stream(system, picture):
    async def trajectory(client: AsyncToolplaneClient, stream, index: int):
        async with client.session([picture]) as session:
            first = await stream.step(session.session_id, code_turn(f"k = {index} * 10"), step=1)
            second = await stream.step(session.session_id, code_turn("print('k =', k)"), step=2)
            batch = await stream.execute_batch(
                [session.call("code", {"code": "print(k + 1)"}), session.call("code", {"code": "k / 0"})]
            )
            return first, second, batch

    async def scenario():
        async with AsyncToolplaneClient(system.gateway, timeout=120) as client:
            async with client.stream() as stream:
                runs = await asyncio.gather(*(trajectory(client, stream, index) for index in range(4)))
                with pytest.raises(InfrastructureError) as unknown:
                    await stream.step("no-such-session", "<answer>x</answer>")
            return runs, unknown.value

    runs, unknown = asyncio.run(scenario())
    for index, (first, second, batch) in enumerate(runs):
        assert first.status is Status.OK
        assert f"k = {index * 10}" in second.observation
        assert [result.status for result in batch] == [Status.OK, Status.MODEL_ERROR]
        assert str(index * 10 + 1) in batch[0].text and "ZeroDivisionError" in batch[1].text
    assert "no-such-session" in unknown.message


def test_stored_images_are_addressed_by_sha256_and_usable_as_inputs(client, picture):
    stored = client.put_image(picture)
    png = client.get_image(stored.sha256)
    assert png.sha256 == stored.sha256 == hashlib.sha256(png.data).hexdigest()
    assert (png.width, png.height) == picture.size
    with client.session([stored]) as session:
        assert session.image_sha256 == [stored.sha256]
        result = session.execute("code", {"code": "print(image_1.size)"})
    assert "(320, 240)" in result.text


def test_a_seed_makes_code_sessions_draw_the_same_numbers(client):
    draw = "import random\nimport numpy as np\nprint(random.random(), np.random.randint(0, 2**31), np.random.rand())"

    def numbers(seed):
        with client.session(seed=seed) as session:
            result = session.execute("code", {"code": draw})
            assert result.ok, result.text
            return result.text

    first, again = numbers(1234), numbers(1234)
    assert first == again
    assert numbers(1235) != first
    assert numbers(None) != numbers(None)
    with pytest.raises(ValueError, match="seed"):
        client.create_session(seed=-1)
    with pytest.raises(ValueError, match="seed"):
        client.create_session(seed=2**32)


def test_batch_runs_calls_of_several_sessions_each_with_its_own_status(client, picture):
    with client.session([picture]) as first, client.session([picture]) as second:
        results = client.execute_batch(
            [
                first.call("code", {"code": "x = 7\nprint(x * 6)"}, call_id="a"),
                second.call("code", {"code": "raise ValueError('no such label')"}, call_id="b"),
                first.call("search", {"query": "jupiter"}, call_id="c"),
                second.call("no_such_tool", {}, call_id="d"),
                first.call("code", {"code": "print(x + 1)"}, call_id="e"),
            ]
        )
    assert [result.call_id for result in results] == ["a", "b", "c", "d", "e"]
    assert [result.status for result in results] == [
        Status.OK,
        Status.MODEL_ERROR,
        Status.OK,
        Status.MODEL_ERROR,
        Status.OK,
    ]
    assert "42" in results[0].text
    assert "ValueError: no such label" in results[1].text and results[1].error.code == "ABORTED"
    assert results[2].text.startswith("A Google search for 'jupiter'")
    assert "Invalid tool call name" in results[3].text
    assert "8" in results[4].text


def test_model_errors_the_model_sees_and_ones_the_server_rejects(client, picture):
    with client.session([picture]) as session:
        bad_arguments = session.execute("code", {"code": ""})
        assert bad_arguments.status is Status.MODEL_ERROR
        assert bad_arguments.error.code == "INVALID_ARGUMENT"
        assert "arguments.code" in bad_arguments.error.message
        bad_zoom = session.step(
            '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [300, 10, 5, 20]}}</tool_call>',
            format="deepeyes-v1",
        )
        assert bad_zoom.status is Status.MODEL_ERROR
        assert "ZOOM IN ARGUMENTS ARE INVALID" in bad_zoom.observation
    with pytest.raises(ModelError) as rejected:
        client.session([b"\x89PNG\r\n\x1a\n but the rest is not"])
    assert rejected.value.code == "INVALID_ARGUMENT" and "images[0]" in rejected.value.message


def test_infrastructure_error_when_the_code_service_dies_and_when_its_state_is_lost(system, picture):
    """A private gateway and code service (image and search shared with the system) so one can be killed."""
    code_port = free_port()
    # Without checkpoints a restarted code service has nothing of the trajectory: the state-lost path under test.
    no_checkpoints = {"TOOLPLANE_CODE_CHECKPOINTS": "off"}
    code = Service("code", code_port, no_checkpoints)
    gateway = private_gateway(system, code_port)
    restarted = None
    retry = RetryPolicy(max_attempts=2, initial_backoff=0.05, max_backoff=0.1)
    try:
        with ToolplaneClient(gateway.address, timeout=60, retry=retry) as client:
            session = client.session([picture])
            assert session.step(code_turn("x = 1\nprint(x)")).status is Status.OK

            code.kill()
            with pytest.raises(InfrastructureError) as died:
                session.step(code_turn("print(x)"))
            assert isinstance(died.value, Unavailable), repr(died.value)
            # Answered by the gateway about its backend: a stateful call is not retried blindly.
            assert died.value.from_server and died.value.attempts == 1

            # In a batch the failure is the item's status, beside the items that did not need the code service.
            batch = client.execute_batch(
                [session.call("code", {"code": "print(x)"}), session.call("search", {"query": "x"})]
            )
            assert [result.status for result in batch] == [Status.INFRA_ERROR, Status.OK]
            assert batch[0].error.code == "UNAVAILABLE" and batch[0].error_class == "INFRASTRUCTURE"

            restarted = Service("code", code_port, no_checkpoints)
            wait_until_code_runs(client, picture)
            # The new code service never saw this trajectory: its kernel (x) is gone, never the model's fault.
            with pytest.raises(InfrastructureError) as lost:
                session.step(code_turn("print(x)"))
            assert lost.value.code == "FAILED_PRECONDITION" and lost.value.error_class == "INFRASTRUCTURE"
            assert not lost.value.retryable and lost.value.attempts == 1, "lost state is never retried"
    finally:
        gateway.stop()
        code.kill()
        if restarted is not None:
            restarted.stop()


def test_a_restarted_code_service_continues_the_trajectory_from_its_checkpoint(system, picture, tmp_path):
    """With checkpoints (the default), a code service that dies and comes back restores the session's state."""
    code_port = free_port()
    checkpoints = {"TOOLPLANE_CODE_CHECKPOINT_DIR": str(tmp_path)}
    code = Service("code", code_port, checkpoints)
    gateway = private_gateway(system, code_port)
    restarted = None
    try:
        with ToolplaneClient(gateway.address, timeout=60) as client:
            session = client.session([picture])
            assert session.step(code_turn("x = 1")).status is Status.OK
            # A call waits for the checkpoint of the cell before it, so once this answers x is in the store.
            assert session.step(code_turn("y = x + 1")).status is Status.OK
            assert session.step(code_turn("print(x + y)")).status is Status.OK
            code.kill()
            restarted = Service("code", code_port, checkpoints)
            wait_until_code_runs(client, picture)
            continued = session.step(code_turn("print(x + y)"))
            assert continued.status is Status.OK, continued.observation
            assert "3" in continued.observation
            assert "restored from its last checkpoint" in continued.observation
    finally:
        gateway.stop()
        code.kill()
        if restarted is not None:
            restarted.stop()


def private_gateway(system, code_port: int) -> Service:
    """A gateway of the test's own, on the code service at code_port and the system's image and search services."""
    return Service(
        "gateway",
        free_port(),
        {
            "TOOLPLANE_CODE_ADDR": f"127.0.0.1:{code_port}",
            "TOOLPLANE_IMAGE_ADDR": f"127.0.0.1:{system.ports['IMAGE']}",
            "TOOLPLANE_SEARCH_ADDR": f"127.0.0.1:{system.ports['SEARCH']}",
        },
    )


def wait_until_code_runs(client: ToolplaneClient, picture: Image.Image) -> None:
    """Waits for the gateway to reconnect to a restarted code service (grpc reconnect backoff)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with client.session([picture]) as probe:
                if probe.execute("code", {"code": "print(1)"}).status is Status.OK:
                    return
        except InfrastructureError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def test_rollout_example_runs_trajectories_to_their_answer(system):
    example = CLIENT_DIR / "examples" / "rollout.py"
    completed = subprocess.run(
        [sys.executable, str(example), "--gateway", system.gateway, "--trajectories", "3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    records = [json.loads(line) for line in completed.stdout.splitlines()]
    assert len(records) == 3
    for record in records:
        assert record["answer"] == "A red square" and record["scorable"]
        assert record["turns"] == 4 and record["images"] == 1


def test_the_readme_example_works_as_written(system, tmp_path, picture):
    document = (ROOT / "docs" / "python-client.md").read_text()
    section = document.split("## Use from a model server", 1)[1]
    example = re.search(r"````python\n(.*?)````", section, re.DOTALL).group(1)
    assert len(example.strip().splitlines()) <= 15
    picture.save(tmp_path / "photo.jpg")
    script = tmp_path / "example.py"
    script.write_text(example.replace("127.0.0.1:50051", system.gateway))
    completed = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(CLIENT_DIR)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert lines[0] == "Outcome.TOOL_CALLED Status.OK"
    assert lines[1].startswith("Code execution result:")
    assert "<image>" in completed.stdout
    assert lines[-1] == "True a red square"
