"""verl/experimental/agent_loop/tool_agent_loop.py at b178a3c, with generation scripted.

Kept as in verl: one ToolAgentLoop instance per sample, which loads the tool_config (so tool objects are built per
sample); `request_id = uuid4().hex` per sample, passed to tools only as `agent_data.request_id`; every tool call is
create -> execute -> release on a fresh instance, with `create_kwargs` from the dataset row's tools_kwargs (one
object shared by the n samples of a prompt); any exception from a tool becomes the text
"Error when executing tool: ..." with reward 0.0; the metrics dict execute returns is dropped; text longer than
max_tool_response_length is cut on tool_response_truncate_side; a response with images becomes ONE {"type": "image"}
item before the text, whatever the number of images; the images join agent_data.image_data; turn limits.
Left out: token ids and response_length, interactions, the gpt-oss format.
"""

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional
from uuid import uuid4

from pydantic import BaseModel

from verl.tools.schemas import ToolResponse
from verl.tools.utils.tool_registry import initialize_tools_from_config

logger = logging.getLogger(__file__)

IMAGE_SLOT = "<|vision_start|><|image_pad|><|vision_end|>"


@dataclass
class MultiTurnConfig:
    """actor_rollout_ref.rollout.multi_turn, defaults of verl/trainer/config/rollout/rollout.yaml."""

    tool_config_path: Optional[str] = None
    max_assistant_turns: Optional[int] = None
    max_user_turns: Optional[int] = None
    max_parallel_calls: int = 1
    max_tool_response_length: int = 256
    tool_response_truncate_side: str = "middle"


@dataclass
class FunctionCall:
    """verl.experimental.agent_loop.tool_parser.FunctionCall: arguments is the JSON text the model wrote."""

    name: str
    arguments: str


class AgentLoopMetrics(BaseModel):
    """AgentLoopOutput.metrics: agent_data.metrics is validated into this, so any other key is dropped."""

    generate_sequences: float = 0.0
    tool_calls: float = 0.0
    num_preempted: int = -1


class AgentData:
    def __init__(self, messages, image_data, metrics, request_id, tools_kwargs):
        self.messages = messages
        self.image_data = image_data
        self.metrics = metrics
        self.request_id = request_id
        self.tools_kwargs = tools_kwargs
        self.turn_scores: list[float] = []
        self.tool_rewards: list[float] = []
        self.user_turns = 0
        self.assistant_turns = 0
        self.tool_calls: list[FunctionCall] = []
        self.extra_fields: dict[str, Any] = {}


@dataclass
class AgentLoopOutput:
    messages: list
    image_data: Optional[list]
    num_turns: int
    metrics: AgentLoopMetrics
    extra_fields: dict = field(default_factory=dict)
    request_id: str = ""  # not in verl's output: kept here so tests can find a sample's gateway session


# The scripted model: given the trajectory so far, the calls of its next turn ([] ends the trajectory).
Generate = Callable[[AgentData], Awaitable[list]]


def apply_chat_template(messages: list, images: Optional[list]) -> str:
    """The processor step of AgentLoopBase.apply_chat_template, reduced to image placement.

    A Qwen2.5-VL chat template renders one image slot per {"type": "image"} content item; the processor then gives
    the i-th slot the i-th image. A slot count that differs from the image count makes the prompt unusable (the
    model's image features and image tokens no longer match), so it is refused here.
    """
    rendered, slots = [], 0
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            rendered.append(content)
            continue
        for item in content:
            if item["type"] == "image":
                slots += 1
                rendered.append(IMAGE_SLOT)
            elif item["type"] == "text":
                rendered.append(item["text"])
    if slots != len(images or []):
        raise ValueError(f"{slots} image slot(s) in the chat template for {len(images or [])} image(s)")
    return "".join(rendered)


class ToolAgentLoop:
    def __init__(self, multi_turn: MultiTurnConfig, generate: Generate):
        self.max_user_turns = multi_turn.max_user_turns
        self.max_assistant_turns = multi_turn.max_assistant_turns
        self.max_parallel_calls = multi_turn.max_parallel_calls
        self.max_tool_response_length = multi_turn.max_tool_response_length
        self.tool_response_truncate_side = multi_turn.tool_response_truncate_side
        tool_config_path = multi_turn.tool_config_path
        tool_list = initialize_tools_from_config(tool_config_path) if tool_config_path else []
        self.tools = {tool.name: tool for tool in tool_list}
        self.tool_schemas = [tool.tool_schema.model_dump(exclude_unset=True, exclude_none=True) for tool in tool_list]
        self.generate = generate
        self.rendered: list[str] = []  # what the processor saw, per tool turn

    async def run(self, raw_prompt: list, image_data: Optional[list] = None, **kwargs) -> AgentLoopOutput:
        agent_data = AgentData(
            messages=list(raw_prompt),
            image_data=image_data,
            metrics={},
            request_id=uuid4().hex,
            tools_kwargs=kwargs.get("tools_kwargs", {}),
        )
        while await self._generating(agent_data):
            if not await self._processing_tools(agent_data):
                break
        output = AgentLoopOutput(
            messages=agent_data.messages,
            image_data=agent_data.image_data,
            num_turns=agent_data.user_turns + agent_data.assistant_turns + 1,
            metrics=AgentLoopMetrics.model_validate(agent_data.metrics),
            extra_fields={},
            request_id=agent_data.request_id,
        )
        output.extra_fields.update({"turn_scores": agent_data.turn_scores, "tool_rewards": agent_data.tool_rewards})
        return output

    async def _generating(self, agent_data: AgentData) -> bool:
        """True when the turn asks for tools and no turn limit ends the trajectory."""
        agent_data.tool_calls = await self.generate(agent_data)
        agent_data.assistant_turns += 1
        agent_data.messages.append({"role": "assistant", "content": "", "tool_calls": agent_data.tool_calls})
        if self.max_assistant_turns and agent_data.assistant_turns >= self.max_assistant_turns:
            return False
        if self.max_user_turns and agent_data.user_turns >= self.max_user_turns:
            return False
        return bool(agent_data.tool_calls)

    async def _processing_tools(self, agent_data: AgentData) -> bool:
        add_messages: list[dict[str, Any]] = []
        new_images_this_turn: list[Any] = []
        tasks = [
            self._call_tool(tool_call, agent_data.tools_kwargs, agent_data)
            for tool_call in agent_data.tool_calls[: self.max_parallel_calls]
        ]
        responses = await asyncio.gather(*tasks)
        for tool_response, tool_reward, _ in responses:
            if tool_response.image or tool_response.video:
                content = []
                if tool_response.image:
                    content.append({"type": "image"})
                if tool_response.video:
                    content.append({"type": "video"})
                if tool_response.text:
                    content.append({"type": "text", "text": tool_response.text})
                message = {"role": "tool", "content": content}
            else:
                message = {"role": "tool", "content": tool_response.text or ""}
            add_messages.append(message)
            if tool_response.image:
                for img in tool_response.image:
                    if img is not None:
                        new_images_this_turn.append(img)
            if tool_response.video:
                raise NotImplementedError("Multimedia type 'video' is not currently supported.")
            if tool_reward is not None:
                agent_data.tool_rewards.append(tool_reward)
        agent_data.messages.extend(add_messages)
        self.rendered.append(apply_chat_template(add_messages, new_images_this_turn))
        if new_images_this_turn:
            if agent_data.image_data is None:
                agent_data.image_data = []
            agent_data.image_data.extend(new_images_this_turn)
        agent_data.user_turns += 1
        return True

    async def _call_tool(self, tool_call: FunctionCall, tools_kwargs: dict, agent_data: AgentData):
        tool, instance_id = None, None
        try:
            tool_name = tool_call.name
            tool_args = json.loads(tool_call.arguments)
            tool = self.tools[tool_name]
            kwargs = tools_kwargs.get(tool_name, {})
            instance_id, _ = await tool.create(create_kwargs=kwargs.get("create_kwargs", {}))
            tool_execution_response, tool_reward, res = await tool.execute(
                instance_id, tool_args, agent_data=agent_data
            )
        except Exception as e:
            logger.warning(f"Error when executing tool: {e}")
            return ToolResponse(text=f"Error when executing tool: {e}"), 0.0, {}
        finally:
            if tool and instance_id:
                await tool.release(instance_id)

        tool_response_text = tool_execution_response.text
        if tool_response_text and len(tool_response_text) > self.max_tool_response_length:
            if self.tool_response_truncate_side == "left":
                tool_response_text = tool_response_text[: self.max_tool_response_length] + "...(truncated)"
            elif self.tool_response_truncate_side == "right":
                tool_response_text = "(truncated)..." + tool_response_text[-self.max_tool_response_length :]
            else:
                length = self.max_tool_response_length // 2
                tool_response_text = tool_response_text[:length] + "...(truncated)..." + tool_response_text[-length:]
        tool_response_kwargs = {"text": tool_response_text}
        for attr_name in ["image", "video"]:
            if hasattr(tool_execution_response, attr_name):
                attr_value = getattr(tool_execution_response, attr_name)
                if attr_value is not None:
                    tool_response_kwargs[attr_name] = attr_value
        return ToolResponse(**tool_response_kwargs), tool_reward, res


async def run_prompt(multi_turn: MultiTurnConfig, generate: Generate, row: dict, n: int) -> list:
    """AgentLoopWorker.generate_sequences for one prompt repeated n times (rollout.n): each sample gets its own
    loop instance (so its own tool objects) and the SAME row values, tools_kwargs included, run concurrently."""
    loops = [ToolAgentLoop(multi_turn, generate) for _ in range(n)]
    return list(await asyncio.gather(*(loop.run(**row) for loop in loops)))
