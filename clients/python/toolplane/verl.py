"""verl tool adapter: gateway tools as verl BaseTools, one gateway session (one kernel) per trajectory.

Supported verl: 0.7.0 and later, checked against a stand-in of volcengine/verl at commit
b178a3cd56f58b2d502255daba591e92833930a7 (clients/python/tests/verl/standin). Since 0.7.0, verl's only tool caller
(verl/experimental/agent_loop/tool_agent_loop.py) passes `agent_data` to `execute`; its `request_id` names one
trajectory (one of the n samples of a prompt), and that is the key of the gateway session. verl 0.6.x does not pass
it: then every call runs in a session of its own (no state between cells), with a warning.

What verl does with a tool, and what this adapter does about it:
- It creates a tool instance and releases it around EVERY call, with `create_kwargs` from the dataset row, which
  the n samples of a prompt share. So create() only remembers the inputs, the session is opened at the
  trajectory's first execute() under `trajectory_id = agent_data.request_id`, reused by every later call of that
  trajectory (from any tool: code, search, image_search share it), and left open by release(). Sessions end by
  the gateway's idle TTL (`idle_ttl`) or close_rollout(); verl never says when a trajectory is over.
- Its ToolResponse refuses `image=None`: the key is only given when there are images.
- A tool message gets ONE image slot, placed before the text, however many images the response holds, and verl
  adds that slot itself: the gateway's `<image>` placeholders are taken out of the text, and several images are
  tiled into one picture (config `multiple_images`).
- It turns any exception from a tool into text shown to the model and keeps going: nothing ends the trajectory.
  An INFRASTRUCTURE failure is retried within the deadline, then returned as a response whose step reward is
  `infrastructure_reward` (the one per-sample value that reaches verl's reward function, as
  extra_info["tool_rewards"]), with a metrics flag, a process counter, agent_data.extra_fields and an ERROR log
  line naming the trajectory. verl has no setting that drops such a sample: see docs/python-client.md, "verl".
- Its schema model keeps only `type`, `description` and `enum` of a property; verl_schema() writes what the other
  keywords said (array sizes, item types, ranges) into the description.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import math
import os
import time
import uuid
import weakref
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ._core import DEFAULT_TARGET, RetryPolicy
from .aio import AsyncToolplaneClient
from .client import ToolplaneClient
from .errors import INFRASTRUCTURE, ToolplaneError
from .images import to_image_bytes
from .results import Status, ToolResult

try:  # verl is optional: its classes are used when it is installed.
    from verl.tools.base_tool import BaseTool as _BaseTool
    from verl.tools.schemas import OpenAIFunctionToolSchema as _VerlSchema
    from verl.tools.schemas import ToolResponse
except ImportError:
    _BaseTool = object
    _VerlSchema = None

    @dataclass
    class ToolResponse:  # type: ignore[no-redef]
        """The fields of verl's ToolResponse, for use without verl."""

        text: Optional[str] = None
        image: Optional[List[Any]] = None
        video: Optional[List[Any]] = None


logger = logging.getLogger(__name__)

# The gateway's default idle TTL (TOOLPLANE_GATEWAY_SESSION_TTL_SECONDS); sessions are opened with an explicit TTL
# so this process knows when the gateway will have closed them.
DEFAULT_IDLE_TTL = 900.0
# Forgotten trajectories are remembered this long, so a late call is reported instead of opening a fresh kernel.
_FORGOTTEN_LIMIT = 65536
_MULTIPLE_IMAGES = ("tile", "first", "list")
_STATE_LOST_CODES = frozenset({"NOT_FOUND", "FAILED_PRECONDITION"})
INFRASTRUCTURE_TEXT = "Error: the tool service failed ({code}); the failure is not caused by your call."


@dataclass
class Counters:
    """Calls of this process's adapter tools, by outcome."""

    calls: int = 0
    model_errors: int = 0
    infrastructure_errors: int = 0
    sessions_opened: int = 0


COUNTERS = Counters()


def counters() -> Dict[str, int]:
    """A snapshot of this process's counters (calls, model_errors, infrastructure_errors, sessions_opened)."""
    return asdict(COUNTERS)


@dataclass
class _Trajectory:
    """The gateway session of one trajectory in this process."""

    address: str
    rollout_id: str
    idle_ttl: float
    opening: Optional["asyncio.Future[str]"] = None
    session_id: str = ""
    lost: Optional[ToolplaneError] = None  # the failure that lost the session's state: later calls report it
    last_used: float = field(default_factory=time.monotonic)
    in_flight: int = 0  # calls running: like the gateway, a session with a call running does not expire
    turn: int = 0


# By (gateway address, trajectory id), least recently used first.
_TRAJECTORIES: "OrderedDict[Tuple[str, str], _Trajectory]" = OrderedDict()
# Trajectories forgotten after their TTL or close_rollout, with the reason a late call gets.
_FORGOTTEN: "OrderedDict[Tuple[str, str], str]" = OrderedDict()
# One client per event loop and gateway settings: verl builds the tools again for every sample.
_ClientKey = Tuple[str, float, RetryPolicy]
_CLIENTS: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Dict[_ClientKey, AsyncToolplaneClient]]" = (
    weakref.WeakKeyDictionary()
)
# Schemas fetched from the gateway, by (address, tool name): fetched once per process, not once per sample.
_SCHEMAS: Dict[Tuple[str, str], Dict[str, Any]] = {}
_warned_without_trajectory = False


def _client(address: str, timeout: float, retry: RetryPolicy) -> AsyncToolplaneClient:
    # grpc.aio channels belong to the event loop that made them.
    clients = _CLIENTS.setdefault(asyncio.get_running_loop(), {})
    key = (address, timeout, retry)
    if key not in clients:
        clients[key] = AsyncToolplaneClient(address, timeout=timeout, retry=retry)
    return clients[key]


async def close_clients() -> None:
    """Closes the gateway channels this event loop's tools opened (before the loop ends, e.g. in tests)."""
    for client in _CLIENTS.pop(asyncio.get_running_loop(), {}).values():
        await client.close()


def _forget(key: Tuple[str, str], reason: str) -> None:
    _TRAJECTORIES.pop(key, None)
    _FORGOTTEN[key] = reason
    _FORGOTTEN.move_to_end(key)
    while len(_FORGOTTEN) > _FORGOTTEN_LIMIT:
        _FORGOTTEN.popitem(last=False)


def _forget_idle(now: float) -> None:
    """Drops trajectories idle past their TTL (the gateway has closed them), oldest first."""
    while _TRAJECTORIES:
        key, trajectory = next(iter(_TRAJECTORIES.items()))
        if trajectory.in_flight or now - trajectory.last_used <= trajectory.idle_ttl:
            return
        _forget(key, f"its gateway session expired after {trajectory.idle_ttl:g}s idle (config idle_ttl)")


@dataclass
class _Instance:
    """One create()..release() of verl: the inputs to open a session with, if this call opens it."""

    images: List[Any]
    rollout_id: str
    reward: float = 0.0
    own_session: Optional[_Trajectory] = None  # verl without agent_data: a session for this instance alone


class ToolplaneTool(_BaseTool):  # type: ignore[misc, valid-type]
    """One gateway tool as a verl BaseTool (see the module docstring).

    config keys (all optional; `type: native` is verl's):
        address: gateway address (default $TOOLPLANE_GATEWAY_ADDR, else 127.0.0.1:50051).
        tool_name: the gateway tool; defaults to the schema's function name (required without a schema).
        timeout: seconds for one call, retries included (default 330).
        tool_timeout: the tool's own time limit per call in seconds (default: the tool's).
        max_attempts: attempts for retryable INFRASTRUCTURE errors within the timeout (default 5).
        error_reward: step reward of a call that ended in a MODEL error (default 0.0).
        infrastructure_reward: step reward of a call that failed for INFRASTRUCTURE reasons (default 0.0).
        idle_ttl: seconds a trajectory's session lives after its last call (default 900); longer than the slowest
            generation turn, or the kernel is gone when the model calls again.
        rollout_id: groups sessions for close_rollout (default ""; create_kwargs.rollout_id overrides it).
        multiple_images: what to hand verl when a call returns several images: 'tile' (default: one picture,
            row by row, and `[image i]` in the text), 'first', or 'list' (all; only for agent loops that give
            each image its own slot, which verl's ToolAgentLoop does not).

    create_kwargs (tools_kwargs.<tool>.create_kwargs of a dataset row): `images` (list) or `image` (one) as PIL
    images, bytes, paths, file:// or data: URIs, or dicts with "bytes", "path" or "image" (as datasets and
    qwen-vl-utils hold them): the trajectory's image_1..image_n; `rollout_id`.
    """

    def __init__(self, config: Optional[Dict[str, Any]] = None, tool_schema: Any = None) -> None:
        config = dict(config or {})
        self.config = config
        self.address = config.get("address") or os.environ.get("TOOLPLANE_GATEWAY_ADDR") or DEFAULT_TARGET
        self.timeout = float(config.get("timeout", 330.0))
        self.tool_timeout = config.get("tool_timeout")
        self.retry = RetryPolicy(max_attempts=int(config.get("max_attempts", 5)))
        self.error_reward = float(config.get("error_reward", 0.0))
        self.infrastructure_reward = float(config.get("infrastructure_reward", 0.0))
        self.idle_ttl = float(config.get("idle_ttl", DEFAULT_IDLE_TTL))
        if self.idle_ttl < 1:
            raise ValueError(f"config idle_ttl must be >= 1 second, got {self.idle_ttl}")
        self.rollout_id = str(config.get("rollout_id", ""))
        self.multiple_images = str(config.get("multiple_images", "tile"))
        if self.multiple_images not in _MULTIPLE_IMAGES:
            raise ValueError(
                f"config multiple_images must be one of {', '.join(_MULTIPLE_IMAGES)}, got {self.multiple_images!r}"
            )
        tool_name = config.get("tool_name")
        if tool_schema is None:
            if not tool_name:
                raise ValueError("ToolplaneTool needs config tool_name or a tool_schema")
            schema = verl_schema(self._fetch_schema(tool_name))
        else:
            schema = _schema_dict(tool_schema)
        self.tool_schema = _VerlSchema.model_validate(schema) if _VerlSchema is not None else schema
        self.name = schema["function"]["name"]
        self.tool_name = tool_name or self.name
        self._instances: Dict[str, _Instance] = {}

    def _fetch_schema(self, tool_name: str) -> Dict[str, Any]:
        key = (self.address, tool_name)
        if key not in _SCHEMAS:
            with ToolplaneClient(self.address, timeout=min(self.timeout, 30.0), retry=self.retry) as client:
                tools = client.list_tools([tool_name])
            if not tools:
                raise ValueError(f"the gateway at {self.address} has no tool {tool_name!r}")
            _SCHEMAS[key] = tools[0].schema
        return copy.deepcopy(_SCHEMAS[key])

    def get_openai_tool_schema(self) -> Any:
        return self.tool_schema

    def _client(self) -> AsyncToolplaneClient:
        return _client(self.address, self.timeout, self.retry)

    async def create(self, instance_id: Optional[str] = None, **kwargs: Any) -> Tuple[str, Any]:
        """Remembers the trajectory's inputs; opens nothing (the session is opened by the first execute)."""
        options = {**(kwargs.pop("create_kwargs", None) or {}), **kwargs}
        images = options.get("images")
        if images is None:
            images = [] if options.get("image") is None else [options["image"]]
        instance_id = instance_id or str(uuid.uuid4())
        self._instances[instance_id] = _Instance(list(images), str(options.get("rollout_id") or self.rollout_id))
        return instance_id, ToolResponse()

    async def execute(self, instance_id: str, parameters: Dict[str, Any], **kwargs: Any) -> Tuple[Any, float, dict]:
        """Runs the tool in the trajectory's session: (ToolResponse, step reward, metrics)."""
        instance = self._instances[instance_id]
        trajectory_id = str(getattr(kwargs.get("agent_data"), "request_id", "") or "")
        COUNTERS.calls += 1
        trajectory = None
        try:
            trajectory = await self._trajectory(instance, trajectory_id)
            trajectory.in_flight += 1
            trajectory.turn += 1
            result = await self._client().execute(
                trajectory.session_id, self.tool_name, parameters, tool_timeout=self.tool_timeout, step=trajectory.turn
            )
        except ToolplaneError as error:
            if error.error_class == INFRASTRUCTURE:
                return self._infrastructure_failure(error, trajectory, trajectory_id, kwargs.get("agent_data"))
            # A whole call the gateway refused as the model's (e.g. arguments that are not an object).
            COUNTERS.model_errors += 1
            instance.reward += self.error_reward
            return ToolResponse(text=f"Error: {error.message}"), self.error_reward, _metrics(trajectory_id, error=error)
        finally:
            if trajectory is not None:
                trajectory.in_flight -= 1
                trajectory.last_used = time.monotonic()
        reward = self.error_reward if result.status is Status.MODEL_ERROR else 0.0
        COUNTERS.model_errors += result.status is Status.MODEL_ERROR
        instance.reward += reward
        text, images = observation_for_verl(result, self.multiple_images)
        response = ToolResponse(text=text, image=images) if images else ToolResponse(text=text)
        return response, reward, _metrics(trajectory_id, result=result, images_shown=len(images))

    async def _trajectory(self, instance: _Instance, trajectory_id: str) -> _Trajectory:
        """The trajectory's open session, opened on its first call."""
        if not trajectory_id:
            _warn_without_trajectory()
            if instance.own_session is None:
                instance.own_session = _Trajectory(self.address, instance.rollout_id, self.idle_ttl)
                instance.own_session.session_id = await self._open(instance, "")
            return instance.own_session
        now = time.monotonic()
        _forget_idle(now)
        key = (self.address, trajectory_id)
        trajectory = _TRAJECTORIES.get(key)
        if trajectory is None:
            if key in _FORGOTTEN:
                raise ToolplaneError(
                    f"trajectory {trajectory_id} was called again after {_FORGOTTEN[key]}; its kernel is gone",
                    code="NOT_FOUND",
                )
            trajectory = _TRAJECTORIES[key] = _Trajectory(self.address, instance.rollout_id, self.idle_ttl)
            trajectory.opening = asyncio.ensure_future(self._open(instance, trajectory_id))
        _TRAJECTORIES.move_to_end(key)
        trajectory.last_used = now
        if trajectory.lost is not None:
            raise trajectory.lost
        if not trajectory.session_id:
            try:
                # Shielded: one sample's cancelled call must not cancel the opening its parallel calls wait on.
                trajectory.session_id = await asyncio.shield(trajectory.opening)
            except ToolplaneError:
                # Nothing ran in a session that failed to open: the next call may open it again.
                if _TRAJECTORIES.get(key) is trajectory:
                    del _TRAJECTORIES[key]
                raise
        return trajectory

    async def _open(self, instance: _Instance, trajectory_id: str) -> str:
        images = [_encoded_once(image) for image in instance.images]
        session = await self._client().create_session(
            images, rollout_id=instance.rollout_id, trajectory_id=trajectory_id, idle_ttl=self.idle_ttl
        )
        COUNTERS.sessions_opened += 1
        return session.session_id

    def _infrastructure_failure(
        self, error: ToolplaneError, trajectory: Optional[_Trajectory], trajectory_id: str, agent_data: Any
    ) -> Tuple[Any, float, dict]:
        COUNTERS.infrastructure_errors += 1
        if trajectory is not None and error.code in _STATE_LOST_CODES:
            # The kernel's state is gone; the gateway would give the next cell a fresh one, and its NameError
            # would be scored as the model's. Later calls of this trajectory report this failure instead.
            trajectory.lost = error
        logger.error(
            "toolplane INFRASTRUCTURE failure: trajectory=%s tool=%s code=%s attempts=%d: %s "
            "(not the model's error: drop this sample)",
            trajectory_id or "-",
            self.tool_name,
            error.code,
            error.attempts,
            error.message,
        )
        report = {"tool": self.tool_name, "code": error.code, "message": error.message}
        if agent_data is not None and isinstance(getattr(agent_data, "extra_fields", None), dict):
            agent_data.extra_fields.setdefault("toolplane_infrastructure_errors", []).append(report)
        text = INFRASTRUCTURE_TEXT.format(code=error.code)
        return ToolResponse(text=text), self.infrastructure_reward, _metrics(trajectory_id, error=error)

    async def calc_reward(self, instance_id: str, **kwargs: Any) -> float:
        """Sum of the step rewards of this instance."""
        instance = self._instances.get(instance_id)
        return 0.0 if instance is None else instance.reward

    async def release(self, instance_id: str, **kwargs: Any) -> None:
        """Forgets the instance; the trajectory's session stays open for its next call."""
        instance = self._instances.pop(instance_id, None)
        if instance is not None and instance.own_session is not None:
            await _close_quietly(self._client(), instance.own_session.session_id)


# PNG bytes of recent PIL input images by id(), holding the image so the id stays its own: the n samples of a
# prompt share one create_kwargs image, and each would otherwise encode it again on the event loop.
_ENCODED: "OrderedDict[int, Tuple[Any, bytes]]" = OrderedDict()
_ENCODED_LIMIT = 64


def _encoded_once(image: Any) -> Any:
    if isinstance(image, dict):  # a datasets Image feature {"bytes", "path"}, or qwen-vl's {"image": source}
        image = image.get("bytes") or image.get("image") or image.get("path")
    if not hasattr(image, "getbands"):  # bytes, paths, data: URIs, ImageRef: sent as they are
        return image
    cached = _ENCODED.get(id(image))
    if cached is None or cached[0] is not image:
        cached = _ENCODED[id(image)] = (image, to_image_bytes(image)[0])
        while len(_ENCODED) > _ENCODED_LIMIT:
            _ENCODED.popitem(last=False)
    _ENCODED.move_to_end(id(image))
    return cached[1]


def _warn_without_trajectory() -> None:
    global _warned_without_trajectory
    if not _warned_without_trajectory:
        _warned_without_trajectory = True
        logger.warning(
            "toolplane: execute() got no agent_data (verl < 0.7.0): each call runs in its own gateway session, "
            "so code state does not carry over between calls"
        )


async def _close_quietly(client: AsyncToolplaneClient, session_id: str) -> None:
    try:
        await client.close_session(session_id)
    except ToolplaneError as error:
        if error.code != "NOT_FOUND":  # NOT_FOUND: the idle TTL or close_rollout got there first.
            logger.warning("toolplane: closing session %s failed: %s", session_id, error)


def _metrics(
    trajectory_id: str,
    *,
    result: Optional[ToolResult] = None,
    error: Optional[ToolplaneError] = None,
    images_shown: int = 0,
) -> Dict[str, Any]:
    """What execute returns as metrics. verl's ToolAgentLoop (b178a3c) drops it; custom agent loops can read it."""
    if result is not None:
        status, error_class = result.status.value, result.error_class or ""
        code = result.error.code if result.error else ""
        timing = (result.timing.queue_ms, result.timing.execute_ms, result.timing.total_ms)
    else:
        assert error is not None
        infrastructure = error.error_class == INFRASTRUCTURE
        status = Status.INFRA_ERROR.value if infrastructure else Status.MODEL_ERROR.value
        error_class, code, timing = error.error_class, error.code, (0.0, 0.0, 0.0)
    return {
        "trajectory_id": trajectory_id,
        "status": status,
        "error_class": error_class,
        "error_code": code,
        "infrastructure_error": int(status == Status.INFRA_ERROR.value),
        "images_returned": 0 if result is None else len(result.images),
        "images_shown": images_shown,
        "queue_ms": timing[0],
        "execute_ms": timing[1],
        "total_ms": timing[2],
    }


# ---- observations in the form verl's agent loop and processor expect ----

PLACEHOLDER = "<image>"


def _rgb(image: Any) -> Any:
    """RGB as qwen_vl_utils.fetch_image hands verl its prompt images: transparency over white."""
    from PIL import Image

    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image.convert("RGB")


def tile(images: List[Any]) -> Any:
    """Several images as one picture: a grid read row by row, each image at the top-left of its cell."""
    from PIL import Image

    columns = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    cell_width = max(image.width for image in images)
    cell_height = max(image.height for image in images)
    picture = Image.new("RGB", (columns * cell_width, rows * cell_height), (255, 255, 255))
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        picture.paste(image, (column * cell_width, row * cell_height))
    return picture


def _replace_placeholders(text: str, label: Any) -> str:
    """Each `<image>` replaced by label(i) (1-based, in order); a line that held only placeholders is dropped."""
    lines, count = [], 0
    for line in text.split("\n"):
        if PLACEHOLDER not in line:
            lines.append(line)
            continue
        parts = line.split(PLACEHOLDER)
        rebuilt = parts[0]
        for part in parts[1:]:
            count += 1
            rebuilt += label(count) + part
        if rebuilt.strip():
            lines.append(rebuilt)
    return "\n".join(lines).strip("\n")


def observation_for_verl(result: ToolResult, multiple_images: str = "tile") -> Tuple[str, List[Any]]:
    """The text and images of a result as verl shows them: verl adds one image slot itself, before the text."""
    images = [_rgb(image.to_pil()) for image in result.images]
    if len(images) > 1 and multiple_images == "tile":
        return _replace_placeholders(result.text, lambda i: f"[image {i}]"), [tile(images)]
    if multiple_images == "first":
        images = images[:1]
    return _replace_placeholders(result.text, lambda i: ""), images


# ---- schemas that survive verl's schema model ----

_TYPE_WORDS = {
    "number": "numbers",
    "integer": "integers",
    "string": "strings",
    "boolean": "booleans",
    "object": "objects",
}


def _size_words(spec: Dict[str, Any], low: str, high: str, unit: str) -> str:
    minimum, maximum = spec.get(low), spec.get(high)
    if minimum is not None and minimum == maximum:
        return f"exactly {minimum} {unit}"
    if minimum is not None and maximum is not None:
        return f"{minimum} to {maximum} {unit}"
    if minimum is not None:
        return f"at least {minimum} {unit}"
    if maximum is not None:
        return f"at most {maximum} {unit}"
    return ""


def _keywords_in_words(spec: Dict[str, Any]) -> str:
    """What the JSON-schema keywords verl drops said, as a sentence for the description."""
    words = []
    if spec.get("type") == "array":
        items = spec.get("items") if isinstance(spec.get("items"), dict) else {}
        unit = _TYPE_WORDS.get(str(items.get("type")), "items")
        size = _size_words(spec, "minItems", "maxItems", unit)
        if size:
            words.append(f"An array of {size}.")
        elif items.get("type"):
            words.append(f"An array of {unit}.")
    if spec.get("type") == "string":
        size = _size_words(spec, "minLength", "maxLength", "characters")
        if size:
            words.append(f"A string of {size}.")
    minimum, maximum = spec.get("minimum"), spec.get("maximum")
    if minimum is not None and maximum is not None:
        words.append(f"From {minimum} to {maximum}.")
    elif minimum is not None:
        words.append(f"At least {minimum}.")
    elif maximum is not None:
        words.append(f"At most {maximum}.")
    return " ".join(words)


def verl_schema(schema: Dict[str, Any]) -> Dict[str, Any]:
    """An OpenAI function schema reduced to what verl's OpenAIFunctionPropertySchema keeps (type, description,
    enum as strings), with the dropped keywords written into the description so the model still reads them."""
    reduced = copy.deepcopy(schema)
    parameters = reduced["function"].setdefault("parameters", {"type": "object", "properties": {}, "required": []})
    parameters.setdefault("required", [])
    properties = parameters.setdefault("properties", {})
    for name, spec in list(properties.items()):
        types = spec.get("type", "string")
        types = [types] if isinstance(types, str) else list(types)
        # verl's `type` is one string: a union is said in words.
        others = f"Or {', or '.join(types[1:])}." if len(types) > 1 else ""
        kept: Dict[str, Any] = {"type": types[0]}
        said = (spec.get("description", ""), _keywords_in_words({**spec, "type": types[0]}), others)
        description = " ".join(part for part in said if part)
        if description:
            kept["description"] = description
        if spec.get("enum") is not None:
            kept["enum"] = [str(value) for value in spec["enum"]]
        properties[name] = kept
    return reduced


def _schema_dict(schema: Any) -> Dict[str, Any]:
    if hasattr(schema, "model_dump"):
        return schema.model_dump(exclude_unset=True, exclude_none=True)
    if isinstance(schema, dict):
        return schema
    raise TypeError(f"tool_schema must be a dict or an OpenAIFunctionToolSchema, got {type(schema).__name__}")


# ---- ending sessions, and a tool_config for the gateway's tools ----


async def close_rollout_async(rollout_id: str, address: Optional[str] = None, timeout: float = 30.0) -> int:
    """Closes every gateway session of `rollout_id` (the config or create_kwargs rollout_id); returns how many."""
    address = address or os.environ.get("TOOLPLANE_GATEWAY_ADDR") or DEFAULT_TARGET
    async with AsyncToolplaneClient(address, timeout=timeout) as client:
        closed = await client.close_rollout(rollout_id)
    for key, trajectory in list(_TRAJECTORIES.items()):
        if key[0] == address and trajectory.rollout_id == rollout_id:
            _forget(key, f"close_rollout({rollout_id!r})")
    return closed


def close_rollout(rollout_id: str, address: Optional[str] = None, timeout: float = 30.0) -> int:
    """close_rollout_async for code outside an event loop, e.g. a trainer between steps."""
    return asyncio.run(close_rollout_async(rollout_id, address, timeout))


async def close_trajectory(trajectory_id: str, address: Optional[str] = None) -> None:
    """Closes one trajectory's session now (for agent loops that know when a trajectory ends)."""
    address = address or os.environ.get("TOOLPLANE_GATEWAY_ADDR") or DEFAULT_TARGET
    key = (address, trajectory_id)
    trajectory = _TRAJECTORIES.get(key)
    _forget(key, "close_trajectory()")
    if trajectory is not None and trajectory.session_id:
        await _close_quietly(_client(address, 30.0, RetryPolicy()), trajectory.session_id)


def tool_config(address: str = DEFAULT_TARGET, names: Optional[List[str]] = None, **config: Any) -> Dict[str, Any]:
    """A verl tool_config ({"tools": [...]}, dump it as YAML) for the gateway's tools, with schemas in the form
    verl keeps (verl_schema)."""
    with ToolplaneClient(address, timeout=float(config.get("timeout", 30.0))) as client:
        tools = client.list_tools(names or [])
    return {
        "tools": [
            {
                "class_name": f"{__name__}.ToolplaneTool",
                "config": {"type": "native", "address": address, "tool_name": tool.name, **config},
                "tool_schema": verl_schema(tool.schema),
            }
            for tool in tools
        ]
    }
