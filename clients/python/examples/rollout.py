#!/usr/bin/env python3
"""A minimal rollout loop: model text -> Step -> append the observation, as a vLLM/SGLang loop does.

Runs several DeepEyesV2-style trajectories concurrently on one event loop. The
"model" here replays a fixed DeepEyesV2 trajectory so the example runs without
a GPU; swap `scripted_model` for your engine, e.g. with vLLM's AsyncLLMEngine:

    params = SamplingParams(stop=["</code>", "</tool_call>"], include_stop_str_in_output=True)
    async for output in engine.generate({"prompt": prompt, "multi_modal_data": {"image": images}}, params, rid):
        pass
    text = output.outputs[0].text

Usage: python3 rollout.py --gateway 127.0.0.1:50051 [--image photo.jpg] [--trajectories 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image, ImageDraw  # noqa: E402

from toolplane import AsyncToolplaneClient, InfrastructureError, Outcome  # noqa: E402

MAX_TURNS = 9
SYSTEM_PROMPT = "Think step by step. Use <code> to run Python on image_1, <tool_call> to search, <answer> to answer."

# One DeepEyesV2 trajectory: crop and show, reuse the kernel's state, search, answer.
SCRIPTED_TURNS = [
    "<think>The label is small; crop the top-left quarter and look.</think>\n"
    "<code>\n```python\nimport matplotlib.pyplot as plt\n"
    "w, h = image_1.size\ncrop = image_1.crop((0, 0, w // 2, h // 2))\n"
    "plt.imshow(crop)\nplt.axis('off')\nplt.show()\n```\n</code>",
    "<think>Check the crop's size from the previous cell.</think>\n"
    "<code>\n```python\nprint('crop size', crop.size)\n```\n</code>",
    '<tool_call>\n{"name": "search", "arguments": {"query": "red square logo meaning"}}\n</tool_call>',
    "<think>Enough evidence.</think>\n<answer>A red square</answer>",
]

Message = Dict[str, Any]
Generate = Callable[[List[Message]], Awaitable[str]]


async def scripted_model(messages: List[Message]) -> str:
    """Stands in for the inference engine: the next turn of the fixed trajectory."""
    turns_so_far = sum(1 for message in messages if message["role"] == "assistant")
    return SCRIPTED_TURNS[min(turns_so_far, len(SCRIPTED_TURNS) - 1)]


async def rollout(
    client: AsyncToolplaneClient, image: Image.Image, question: str, generate: Generate, rollout_id: str
) -> Dict[str, Any]:
    """One trajectory. Returns its record; an infrastructure failure marks it unscorable."""
    messages: List[Message] = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": question}]},
    ]
    record: Dict[str, Any] = {"turns": 0, "answer": None, "images": 0, "tool_errors": 0, "scorable": True}
    try:
        async with client.session([image], rollout_id=rollout_id, trajectory_id=uuid.uuid4().hex) as session:
            for _ in range(MAX_TURNS):
                text = await generate(messages)
                messages.append({"role": "assistant", "content": text})
                record["turns"] += 1
                step = await session.step(text)
                if step.outcome is Outcome.ANSWER:
                    record["answer"] = step.answer
                    break
                if step.outcome is Outcome.NO_CALL:
                    break
                # A MODEL error (code raised, bad call) is part of the observation: the model sees it and goes on.
                record["tool_errors"] += step.error is not None
                images = step.pil_images()
                record["images"] += len(images)
                content = [{"type": "image", "image": picture} for picture in images]
                messages.append({"role": "user", "content": [*content, {"type": "text", "text": step.observation}]})
    except InfrastructureError as error:
        # Not the model's fault: drop the trajectory from training instead of scoring it.
        record.update(scorable=False, infrastructure_error=f"{error.code}: {error.message}")
    record["messages"] = len(messages)
    return record


def sample_image() -> Image.Image:
    image = Image.new("RGB", (320, 240), "white")
    ImageDraw.Draw(image).rectangle((20, 20, 120, 100), fill="red")
    return image


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", default="127.0.0.1:50051")
    parser.add_argument("--image", type=Path, help="input image (default: a drawn sample)")
    parser.add_argument("--question", default="What is in the top-left corner?")
    parser.add_argument("--trajectories", type=int, default=4)
    args = parser.parse_args()
    image = Image.open(args.image) if args.image else sample_image()
    rollout_id = uuid.uuid4().hex
    async with AsyncToolplaneClient(args.gateway) as client:
        records = await asyncio.gather(
            *(rollout(client, image, args.question, scripted_model, rollout_id) for _ in range(args.trajectories))
        )
    for record in records:
        print(json.dumps(record))
    return 0 if all(record["scorable"] and record["answer"] for record in records) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
