"""verl tool adapter: BaseTool-shaped classes backed by the toolplane gateway.

verl is not imported unless it is installed; without it the classes keep the
same shape (duck typing) and return plain dicts and a small ToolResponse.

A verl tool config points at the gateway like this (or use tool_config()):

    tools:
      - class_name: toolplane.verl.ToolplaneTool
        config: {type: native, address: "127.0.0.1:50051", tool_name: execute_python}
        tool_schema: null          # fetched from the gateway's ListTools when null

Per-trajectory state: tools called with the same `trajectory_id` in their
create kwargs share ONE gateway session (one Python kernel, one set of input
images), e.g. DeepEyesV2's code and search tools. verl's agent loop creates and
releases a tool instance around every call: set keep_session_on_release so the
kernel survives between calls (the gateway's idle TTL, or close_rollout, ends it).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import uuid
import weakref
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from ._core import DEFAULT_TARGET, RetryPolicy
from .aio import AsyncToolplaneClient
from .client import ToolplaneClient
from .errors import ToolplaneError
from .results import Status, ToolResult

try:  # verl is optional: use its types when it is there.
    from verl.tools.base_tool import BaseTool as _VerlBaseTool
    from verl.tools.schemas import OpenAIFunctionToolSchema as _VerlSchema
except ImportError:
    _VerlBaseTool = None
    _VerlSchema = None

try:
    from verl.tools.schemas import ToolResponse as _VerlToolResponse
except ImportError:
    _VerlToolResponse = None


@dataclass
class ToolResponse:
    """What verl's ToolResponse holds, for when verl is not installed."""

    text: Optional[str] = None
    image: Optional[List[Any]] = None
    video: Optional[List[Any]] = None


def _tool_response(text: str, images: List[Any]) -> Any:
    if _VerlToolResponse is not None:
        return _VerlToolResponse(text=text, image=images or None)
    if _VerlBaseTool is not None:
        # verl releases before ToolResponse took a dict with the same keys.
        return {"text": text, "image": images or None}
    return ToolResponse(text=text, image=images or None)


def _schema_dict(schema: Any) -> Dict[str, Any]:
    if hasattr(schema, "model_dump"):
        return schema.model_dump(exclude_unset=True, exclude_none=True)
    if isinstance(schema, dict):
        return schema
    raise TypeError(f"tool_schema must be a dict or an OpenAIFunctionToolSchema, got {type(schema).__name__}")


def _create_returns_tuple(setting: str) -> bool:
    # Newer verl expects `instance_id, response = await tool.create(...)`; older verl a bare id.
    if setting in ("id", "tuple"):
        return setting == "tuple"
    if setting != "auto":
        raise ValueError(f"config create_returns must be 'auto', 'id' or 'tuple', got {setting!r}")
    if _VerlBaseTool is None:
        return False
    annotation = inspect.signature(_VerlBaseTool.create).return_annotation
    return "tuple" in str(annotation).lower()


@dataclass
class _SharedSession:
    opening: "asyncio.Future[str]"
    references: int = 0


# Sessions shared by every tool of one trajectory in this process, by (gateway, trajectory_id).
_SHARED_SESSIONS: Dict[Tuple[str, str], _SharedSession] = {}


@dataclass
class _Instance:
    session_id: str
    shared_key: Optional[Tuple[str, str]]
    turn: int = 0
    reward: float = 0.0


class ToolplaneTool(_VerlBaseTool or object):  # type: ignore[misc]
    """One gateway tool as a verl BaseTool.

    config keys (all optional except where noted):
        address: gateway address (default $TOOLPLANE_GATEWAY_ADDR or 127.0.0.1:50051).
        tool_name: gateway tool to call; defaults to the schema's function name (required without a schema).
        timeout: RPC deadline in seconds, retries included (default 330).
        tool_timeout: the tool's own time limit per call in seconds (default: the tool's).
        max_attempts: attempts for retryable INFRASTRUCTURE errors (default 5).
        error_reward: step reward of a call that ended in a MODEL error (default 0.0).
        idle_ttl: seconds of inactivity after which the gateway closes the session (default: gateway's).
        keep_session_on_release: leave the gateway session open on release (default False).
        create_returns: 'auto' (follow the installed verl), 'id' or 'tuple'.

    An INFRASTRUCTURE failure raises toolplane.InfrastructureError from execute():
    the trajectory must be dropped or retried, not scored.
    """

    def __init__(self, config: Optional[Dict[str, Any]] = None, tool_schema: Any = None) -> None:
        config = dict(config or {})
        self.config = config
        self.address = config.get("address") or os.environ.get("TOOLPLANE_GATEWAY_ADDR") or DEFAULT_TARGET
        self.timeout = float(config.get("timeout", 330.0))
        self.tool_timeout = config.get("tool_timeout")
        self.retry = RetryPolicy(max_attempts=int(config.get("max_attempts", 5)))
        self.error_reward = float(config.get("error_reward", 0.0))
        self.idle_ttl = config.get("idle_ttl")
        self.keep_session_on_release = bool(config.get("keep_session_on_release", False))
        self._returns_tuple = _create_returns_tuple(str(config.get("create_returns", "auto")))
        tool_name = config.get("tool_name")
        if tool_schema is None:
            if not tool_name:
                raise ValueError("ToolplaneTool needs config tool_name or a tool_schema")
            tool_schema = self._fetch_schema(tool_name)
        self._schema = _schema_dict(tool_schema)
        self.name = self._schema["function"]["name"]
        self.tool_name = tool_name or self.name
        self.tool_schema = self.get_openai_tool_schema()
        self._instances: Dict[str, _Instance] = {}
        self._clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncToolplaneClient]" = (
            weakref.WeakKeyDictionary()
        )

    def _fetch_schema(self, tool_name: str) -> Dict[str, Any]:
        with ToolplaneClient(self.address, timeout=self.timeout, retry=self.retry) as client:
            tools = client.list_tools([tool_name])
        if not tools:
            raise ValueError(f"the gateway at {self.address} has no tool {tool_name!r}")
        return tools[0].schema

    def _client(self) -> AsyncToolplaneClient:
        # grpc.aio channels belong to the event loop that made them; verl may run several loops.
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = AsyncToolplaneClient(self.address, timeout=self.timeout, retry=self.retry)
            self._clients[loop] = client
        return client

    def get_openai_tool_schema(self) -> Any:
        """The OpenAI function schema: verl's OpenAIFunctionToolSchema when verl is installed, else a dict."""
        return _VerlSchema.model_validate(self._schema) if _VerlSchema is not None else self._schema

    async def create(self, instance_id: Optional[str] = None, **kwargs: Any) -> Any:
        """Opens (or joins) the trajectory's gateway session.

        kwargs (directly, or inside create_kwargs as verl's agent loop passes them):
        images (list) or image (one) as PIL images, bytes or paths; trajectory_id; rollout_id.
        """
        options = {**(kwargs.pop("create_kwargs", None) or {}), **kwargs}
        images = list(options.get("images") or ([] if options.get("image") is None else [options["image"]]))
        trajectory_id = str(options.get("trajectory_id") or "")
        rollout_id = str(options.get("rollout_id") or "")
        instance_id = instance_id or str(uuid.uuid4())
        client = self._client()
        if trajectory_id:
            key = (self.address, trajectory_id)
            shared = _SHARED_SESSIONS.get(key)
            if shared is None:
                opening = asyncio.ensure_future(self._open(client, images, rollout_id, trajectory_id))
                shared = _SHARED_SESSIONS[key] = _SharedSession(opening)
            shared.references += 1
            try:
                session_id = await asyncio.shield(shared.opening)
            except BaseException:
                self._drop_reference(key)
                raise
            self._instances[instance_id] = _Instance(session_id, key)
        else:
            self._instances[instance_id] = _Instance(await self._open(client, images, rollout_id, ""), None)
        return (instance_id, _tool_response("", [])) if self._returns_tuple else instance_id

    async def _open(self, client: AsyncToolplaneClient, images: List[Any], rollout_id: str, trajectory_id: str) -> str:
        session = await client.create_session(
            images, rollout_id=rollout_id, trajectory_id=trajectory_id, idle_ttl=self.idle_ttl
        )
        return session.session_id

    def _drop_reference(self, key: Tuple[str, str]) -> bool:
        """Forgets one user of a shared session; True when it was the last one."""
        shared = _SHARED_SESSIONS[key]
        shared.references -= 1
        if shared.references > 0:
            return False
        del _SHARED_SESSIONS[key]
        return True

    async def execute(self, instance_id: str, parameters: Dict[str, Any], **kwargs: Any) -> Tuple[Any, float, dict]:
        """Runs the tool; returns (ToolResponse{text, image}, step reward, metrics)."""
        instance = self._instances[instance_id]
        instance.turn += 1
        result = await self._client().execute(
            instance.session_id,
            self.tool_name,
            parameters,
            tool_timeout=self.tool_timeout,
            step=instance.turn,
        )
        reward = self.error_reward if result.status is Status.MODEL_ERROR else 0.0
        instance.reward += reward
        return _tool_response(result.text, result.pil_images()), reward, _metrics(result)

    async def calc_reward(self, instance_id: str, **kwargs: Any) -> float:
        """Sum of the step rewards of this instance."""
        return self._instances[instance_id].reward

    async def release(self, instance_id: str, **kwargs: Any) -> None:
        instance = self._instances.pop(instance_id, None)
        if instance is None:
            return
        last_user = instance.shared_key is None or self._drop_reference(instance.shared_key)
        if last_user and not self.keep_session_on_release:
            try:
                await self._client().close_session(instance.session_id)
            except ToolplaneError as error:
                if error.code != "NOT_FOUND":
                    raise
                # Already closed by the idle TTL or close_rollout.


def _metrics(result: ToolResult) -> Dict[str, Any]:
    return {
        "status": result.status.value,
        "error_class": result.error_class or "",
        "error_code": result.error.code if result.error else "",
        "images": len(result.images),
        "queue_ms": result.timing.queue_ms,
        "execute_ms": result.timing.execute_ms,
        "total_ms": result.timing.total_ms,
    }


def tool_config(address: str = DEFAULT_TARGET, names: Optional[List[str]] = None, **config: Any) -> Dict[str, Any]:
    """A verl tool config ({"tools": [...]}, dump it as YAML) for the gateway's tools, schemas included."""
    with ToolplaneClient(address, timeout=float(config.get("timeout", 30.0))) as client:
        tools = client.list_tools(names or [])
    return {
        "tools": [
            {
                "class_name": f"{__name__}.ToolplaneTool",
                "config": {"type": "native", "address": address, "tool_name": tool.name, **config},
                "tool_schema": tool.schema,
            }
            for tool in tools
        ]
    }
