"""A rollout worker's long-lived Connect stream: many requests in flight on one bidirectional RPC.

Requests are written as they come and answered out of order, matched by
request_id; the gateway applies backpressure per stream. Errors, deadlines and
retries follow the same rules as the unary calls: a reply carrying a ToolError
is raised as the typed error of its class, and only retryable INFRASTRUCTURE
errors are retried. When the stream itself breaks, every request still waiting
fails with UNAVAILABLE and the next request opens a new stream; those requests
may have run, so stateful ones are not retried blindly.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Union

import grpc
import grpc.aio

from ._core import Call, execute_request, infrastructure_error_in, step_request, with_retries
from ._proto import gateway_pb2
from .errors import Unavailable, from_rpc_error, make_error
from .results import ErrorInfo, StepResult, ToolResult

if TYPE_CHECKING:
    from .aio import AsyncToolplaneClient
    from .client import Arguments


class WorkerStream:
    """Execute, ExecuteBatch and Step over one Connect stream; use as `async with client.stream() as stream:`."""

    def __init__(self, client: "AsyncToolplaneClient") -> None:
        self._client = client
        self._call: Any = None
        self._reader: Optional["asyncio.Task[None]"] = None
        self._write_lock: Optional[asyncio.Lock] = None
        self._pending: Dict[str, "asyncio.Future[Any]"] = {}
        self._ids = itertools.count(1)

    async def __aenter__(self) -> "WorkerStream":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Half-closes the stream and waits for the answers still due."""
        if self._call is None:
            return
        call, reader = self._call, self._reader
        self._call = None
        async with self._lock():
            await call.done_writing()
        if reader is not None:
            await reader

    def _lock(self) -> asyncio.Lock:
        # Created on first use so it belongs to the running event loop.
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        return self._write_lock

    def _open(self) -> Any:
        if self._call is None:
            self._call = self._client._stub.Connect(metadata=self._client._metadata)
            self._reader = asyncio.ensure_future(self._read(self._call))
        return self._call

    async def _read(self, call: Any) -> None:
        try:
            while True:
                message = await call.read()
                if message is grpc.aio.EOF:
                    break
                future = self._pending.pop(message.request_id, None)
                if future is not None and not future.done():
                    future.set_result(message)
            failure = Unavailable("Connect stream ended before answering", code="UNAVAILABLE")
        except grpc.aio.AioRpcError as rpc_error:
            failure = from_rpc_error(rpc_error.code(), rpc_error.details(), rpc_error.trailing_metadata())
        if self._call is call:
            self._call = None
        waiting = [future for future in self._pending.values() if not future.done()]
        self._pending.clear()
        for future in waiting:
            # One exception per waiter; from_server because the requests were written and may have run.
            future.set_exception(
                make_error(failure.error_class, failure.code, failure.message, failure.retry_after, from_server=True)
            )

    async def _request(self, field: str, message: Any, timeout: Optional[float], check: Any) -> Any:
        async def attempt(remaining: Optional[float]) -> Any:
            request_id = str(next(self._ids))
            future: "asyncio.Future[Any]" = asyncio.get_running_loop().create_future()
            self._pending[request_id] = future
            try:
                async with self._lock():
                    await self._open().write(gateway_pb2.WorkerMessage(request_id=request_id, **{field: message}))
                reply = await asyncio.wait_for(asyncio.shield(future), remaining)
            except asyncio.TimeoutError:
                raise from_rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "no reply on the Connect stream in time", ())
            except grpc.aio.UsageError as error:
                raise Unavailable(f"Connect stream closed: {error}", code="UNAVAILABLE", from_server=False)
            finally:
                self._pending.pop(request_id, None)
            answered = reply.WhichOneof("response")
            if answered == "error":
                raise ErrorInfo.from_proto(reply.error).to_exception()
            return getattr(reply, answered)

        timeout = self._client.timeout if timeout is None else timeout
        return await with_retries(f"Connect/{field}", attempt, self._client.retry, timeout, check, stateful=True)

    async def execute(
        self,
        session_id: str,
        name: str,
        arguments: "Arguments" = None,
        *,
        call_id: str = "",
        tool_timeout: Optional[float] = None,
        step: int = 0,
        image_delivery: Optional[str] = None,
        raise_infrastructure: bool = True,
        timeout: Optional[float] = None,
    ) -> ToolResult:
        call = Call(session_id, name, arguments, call_id, tool_timeout, step)
        request = execute_request(call, image_delivery or self._client.image_delivery)
        check = infrastructure_error_in if raise_infrastructure else None
        return ToolResult.from_proto((await self._request("execute", request, timeout, check)).result)

    async def execute_batch(
        self, calls: Iterable[Call], *, image_delivery: Optional[str] = None, timeout: Optional[float] = None
    ) -> List[ToolResult]:
        delivery = image_delivery or self._client.image_delivery
        request = gateway_pb2.ExecuteBatchRequest(calls=[execute_request(call, delivery) for call in calls])
        response = await self._request("execute_batch", request, timeout, None)
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
        delivery = image_delivery or self._client.image_delivery
        request = step_request(session_id, text, format, delivery, tool_timeout, step)
        check = infrastructure_error_in if raise_infrastructure else None
        return StepResult.from_proto(await self._request("step", request, timeout, check))
