"""The verl adapter without verl installed (Debian's Python has no pydantic 2).

Its behaviour inside verl is tested against the stand-in of verl's classes in clients/python/tests/verl, which
run.py runs under a Python with pydantic 2 (make test-python does both).
"""

from __future__ import annotations

import io

from PIL import Image

import toolplane.verl as adapter
from toolplane.images import ToolImage
from toolplane.results import Status, ToolResult


def image(color, size=(10, 10), mode="RGB") -> ToolImage:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="PNG")
    return ToolImage("", "image/png", size[0], size[1], buffer.getvalue())


def test_without_verl_the_adapter_imports_and_builds_plain_responses():
    assert adapter.ToolplaneTool.__mro__[1] is object
    response = adapter.ToolResponse(text="x")
    assert (response.text, response.image, response.video) == ("x", None, None)


def test_observation_for_verl_takes_placeholders_out_and_tiles_several_images():
    one = ToolResult("", "code", "stdout:\nhi\nImages:\n<image>", [image("red", mode="P")], Status.OK)
    text, images = adapter.observation_for_verl(one)
    assert text == "stdout:\nhi\nImages:" and [i.mode for i in images] == ["RGB"]
    five = ToolResult("", "image_search", "1. <image>\n[a]\n" * 5, [image("blue")] * 5, Status.OK)
    text, (picture,) = adapter.observation_for_verl(five)
    assert "<image>" not in text and text.startswith("1. [image 1]\n[a]\n1. [image 2]")
    assert picture.size == (30, 20)  # three per row, two rows
    none = ToolResult("", "search", "found 0", [], Status.OK)
    assert adapter.observation_for_verl(none) == ("found 0", [])
