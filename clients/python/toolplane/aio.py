"""The asyncio client (grpc.aio), for rollout loops that run hundreds of trajectories on one event loop."""

from __future__ import annotations

from typing import Any, Callable, Generator, Iterable, List, Optional, Sequence, Tuple, Union

import grpc
import grpc.aio

from ._core import (
    CHANNEL_OPTIONS,
    DEFAULT_TARGET,
    DEFAULT_TIMEOUT,
    Call,
    RetryPolicy,
    create_session_request,
    execute_request,
    infrastructure_error_in,
    step_request,
    with_retries,
)
from ._proto import GATEWAY_SERVICE, gateway_pb2
from ._stub import GenericStub
from .client import Arguments
from .errors import ToolplaneError, from_rpc_error
from .images import ToolImage, to_image_bytes
from .results import StepResult, Tool, ToolResult
from .stream import WorkerStream
from .tracing import call_metadata


class AsyncToolplaneClient:
    """asyncio client of toolplane.gateway.v1.ToolGateway; same methods as ToolplaneClient, awaited.

    Create it inside the event loop that uses it (grpc.aio channels belong to one loop).
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        channel: Optional[grpc.aio.Channel] = None,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        retry: RetryPolicy = RetryPolicy(),
        image_delivery: str = "bytes",
        metadata: Sequence[Tuple[str, str]] = (),
    ) -> None:
        self._owns_channel = channel is None
        self._channel = channel if channel is not None else grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        self._stub = GenericStub(self._channel, gateway_pb2, GATEWAY_SERVICE.rsplit(".", 1)[1])
        self.timeout = timeout
        self.retry = retry
        self.image_delivery = image_delivery
        self._metadata = tuple(metadata)

    async def close(self) -> None:
        if self._owns_channel:
            await self._channel.close()

    async def __aenter__(self) -> "AsyncToolplaneClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _invoke(
        self,
        method: str,
        request: Any,
        timeout: Optional[float],
        check: Optional[Callable[[Any], Optional[ToolplaneError]]] = None,
        stateful: bool = False,
    ) -> Any:
        rpc = getattr(self._stub, method)

        async def attempt(remaining: Optional[float]) -> Any:
            try:
                return await rpc(request, timeout=remaining, metadata=call_metadata(self._metadata))
            except grpc.aio.AioRpcError as rpc_error:
                error = from_rpc_error(rpc_error.code(), rpc_error.details(), rpc_error.trailing_metadata())
                raise error from rpc_error

        timeout = self.timeout if timeout is None else timeout
        return await with_retries(method, attempt, self.retry, timeout, check, stateful)

    async def list_tools(self, names: Iterable[str] = (), *, timeout: Optional[float] = None) -> List[Tool]:
        response = await self._invoke("ListTools", gateway_pb2.ListToolsRequest(names=list(names)), timeout)
        return [Tool.from_proto(tool) for tool in response.tools]

    async def create_session(
        self,
        images: Iterable[Any] = (),
        *,
        rollout_id: str = "",
        trajectory_id: str = "",
        idle_ttl: Optional[float] = None,
        seed: Optional[int] = None,
        format: Union[str, int] = "deepeyes-v2",
        timeout: Optional[float] = None,
    ) -> "AsyncSession":
        """Opens a trajectory; the i-th image becomes image_i."""
        request = create_session_request(images, rollout_id, trajectory_id, idle_ttl, seed)
        response = await self._invoke("CreateSession", request, timeout)
        return AsyncSession(self, response.session_id, list(response.image_sha256), format)

    def stream(self) -> "WorkerStream":
        """One long-lived Connect stream carrying many Execute/ExecuteBatch/Step requests (see toolplane.stream)."""
        return WorkerStream(self)

    def session(self, images: Iterable[Any] = (), **options: Any) -> "_SessionOpener":
        """`async with client.session(images) as session:` opens a trajectory and closes it on exit."""
        return _SessionOpener(self.create_session(images, **options))

    async def close_session(self, session_id: str, *, timeout: Optional[float] = None) -> None:
        await self._invoke("CloseSession", gateway_pb2.CloseSessionRequest(session_id=session_id), timeout)

    async def close_rollout(self, rollout_id: str, *, timeout: Optional[float] = None) -> int:
        response = await self._invoke("CloseRollout", gateway_pb2.CloseRolloutRequest(rollout_id=rollout_id), timeout)
        return response.closed_sessions

    async def put_image(self, image: Any, *, timeout: Optional[float] = None) -> ToolImage:
        data, _ = to_image_bytes(image)
        response = await self._invoke("PutImage", gateway_pb2.PutImageRequest(data=data), timeout)
        return ToolImage.from_proto(response.image)

    async def get_image(self, sha256: str, *, timeout: Optional[float] = None) -> ToolImage:
        response = await self._invoke("GetImage", gateway_pb2.GetImageRequest(sha256=sha256), timeout)
        return ToolImage.from_proto(response.image)

    async def execute(
        self,
        session_id: str,
        name: str,
        arguments: Arguments = None,
        *,
        call_id: str = "",
        tool_timeout: Optional[float] = None,
        step: int = 0,
        image_delivery: Optional[str] = None,
        raise_infrastructure: bool = True,
        timeout: Optional[float] = None,
    ) -> ToolResult:
        call = Call(session_id, name, arguments, call_id, tool_timeout, step)
        request = execute_request(call, image_delivery or self.image_delivery)
        check = infrastructure_error_in if raise_infrastructure else None
        return ToolResult.from_proto((await self._invoke("Execute", request, timeout, check, stateful=True)).result)

    async def execute_batch(
        self, calls: Iterable[Call], *, image_delivery: Optional[str] = None, timeout: Optional[float] = None
    ) -> List[ToolResult]:
        delivery = image_delivery or self.image_delivery
        request = gateway_pb2.ExecuteBatchRequest(calls=[execute_request(call, delivery) for call in calls])
        response = await self._invoke("ExecuteBatch", request, timeout, stateful=True)
        return [ToolResult.from_proto(result) for result in response.results]

    async def step(
        self,
        session_id: str,
        text: str,
        *,
        format: Union[str, int] = "deepeyes-v2",
        tool_timeout: Optional[float] = None,
        step: int = 0,
        image_delivery: Optional[str] = None,
        raise_infrastructure: bool = True,
        timeout: Optional[float] = None,
    ) -> StepResult:
        request = step_request(session_id, text, format, image_delivery or self.image_delivery, tool_timeout, step)
        check = infrastructure_error_in if raise_infrastructure else None
        return StepResult.from_proto(await self._invoke("Step", request, timeout, check, stateful=True))


class AsyncSession:
    """One trajectory on the gateway (asyncio); see toolplane.client.Session."""

    def __init__(
        self, client: AsyncToolplaneClient, session_id: str, image_sha256: List[str], format: Union[str, int]
    ):
        self.client = client
        self.session_id = session_id
        self.image_sha256 = image_sha256
        self.format = format
        self.turn = 0

    def _next_turn(self, step: Optional[int]) -> int:
        self.turn = self.turn + 1 if step is None else step
        return self.turn

    async def step(self, text: str, *, step: Optional[int] = None, **options: Any) -> StepResult:
        options.setdefault("format", self.format)
        return await self.client.step(self.session_id, text, step=self._next_turn(step), **options)

    async def execute(
        self, name: str, arguments: Arguments = None, *, step: Optional[int] = None, **options: Any
    ) -> ToolResult:
        return await self.client.execute(self.session_id, name, arguments, step=self._next_turn(step), **options)

    def call(self, name: str, arguments: Arguments = None, **options: Any) -> Call:
        return Call(self.session_id, name, arguments, **options)

    async def close(self) -> None:
        await self.client.close_session(self.session_id)

    async def __aenter__(self) -> "AsyncSession":
        return self

    async def __aexit__(self, exc_type: object, *exc_info: object) -> None:
        try:
            await self.close()
        except ToolplaneError as error:
            # NOT_FOUND: already gone (idle timeout or CloseRollout), nothing left to release.
            # And a failed close never hides the exception that ended the block.
            if exc_type is None and error.code != "NOT_FOUND":
                raise


class _SessionOpener:
    """Lets client.session(...) be awaited or used with `async with`."""

    def __init__(self, opening: Any) -> None:
        self._opening = opening
        self._session: Optional[AsyncSession] = None

    def __await__(self) -> Generator[Any, None, AsyncSession]:
        return self._opening.__await__()

    async def __aenter__(self) -> AsyncSession:
        self._session = await self._opening
        return self._session

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._session is not None
        await self._session.__aexit__(*exc_info)
