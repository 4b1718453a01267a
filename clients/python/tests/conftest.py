"""Fixtures of the Python client's tests.

Unit tests talk to a scripted in-process gRPC server (fake_gateway); integration
tests to the real system started on free loopback ports, as `make run` starts it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from concurrent import futures
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import grpc
import pytest

CLIENT_DIR = Path(__file__).resolve().parents[1]
ROOT = CLIENT_DIR.parents[1]

if not (CLIENT_DIR / "toolplane" / "_generated").is_dir():
    subprocess.run([sys.executable, str(CLIENT_DIR / "generate.py")], check=True)
sys.path.insert(0, str(CLIENT_DIR))

from toolplane._proto import GATEWAY_SERVICE, gateway_pb2  # noqa: E402


class Reply:
    """One scripted answer of the fake gateway: a response message, or an abort with trailing metadata."""

    def __init__(
        self,
        response: Any = None,
        *,
        code: Optional[grpc.StatusCode] = None,
        details: str = "",
        metadata: tuple = (),
        delay: float = 0.0,
    ) -> None:
        self.response = response
        self.code = code
        self.details = details
        self.metadata = metadata
        self.delay = delay


def abort(code: grpc.StatusCode, details: str, error_class: Optional[str] = None, retry_after_ms: Optional[int] = None):
    metadata = []
    if error_class is not None:
        metadata.append(("toolplane-error-class", error_class))
    if retry_after_ms is not None:
        metadata.append(("toolplane-retry-after-ms", str(retry_after_ms)))
    return Reply(code=code, details=details, metadata=tuple(metadata))


class FakeGateway:
    """A real gRPC server on loopback answering ToolGateway methods from a per-method script."""

    def __init__(self) -> None:
        self.scripts: Dict[str, List[Reply]] = {}
        self.requests: Dict[str, List[Any]] = {}
        # Invocation metadata of every call, per method, as dicts (what the client sent on the wire).
        self.metadata: Dict[str, List[Dict[str, str]]] = {}
        # Connect handler: (request_iterator, context) -> iterator of GatewayMessage; set by a test.
        self.connect: Optional[Callable[[Any, grpc.ServicerContext], Any]] = None
        self.connect_streams = 0
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        descriptor = gateway_pb2.DESCRIPTOR.services_by_name["ToolGateway"]
        handlers = {}
        handlers["Connect"] = grpc.stream_stream_rpc_method_handler(
            self._connect,
            request_deserializer=gateway_pb2.WorkerMessage.FromString,
            response_serializer=gateway_pb2.GatewayMessage.SerializeToString,
        )
        for method in descriptor.methods:
            if method.client_streaming or method.server_streaming:
                continue
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                self._handler(method.name),
                request_deserializer=getattr(gateway_pb2, method.input_type.name).FromString,
                response_serializer=getattr(gateway_pb2, method.output_type.name).SerializeToString,
            )
        self._server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(GATEWAY_SERVICE, handlers)])
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.target = f"127.0.0.1:{self.port}"

    def script(self, method: str, *replies: Reply) -> None:
        """Answers the next calls of `method` with `replies` in order; the last one repeats."""
        with self._lock:
            self.scripts[method] = list(replies)

    def calls(self, method: str) -> List[Any]:
        with self._lock:
            return list(self.requests.get(method, []))

    def _handler(self, method: str) -> Callable[[Any, grpc.ServicerContext], Any]:
        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            with self._lock:
                self.requests.setdefault(method, []).append(request)
                self.metadata.setdefault(method, []).append(dict(context.invocation_metadata()))
                script = self.scripts.get(method)
                if not script:
                    reply = Reply(code=grpc.StatusCode.UNIMPLEMENTED, details=f"{method} not scripted")
                else:
                    reply = script.pop(0) if len(script) > 1 else script[0]
            if reply.delay:
                time.sleep(reply.delay)
            if reply.code is not None:
                context.set_trailing_metadata(reply.metadata)
                context.abort(reply.code, reply.details)
            return reply.response

        return handle

    def _connect(self, requests: Any, context: grpc.ServicerContext) -> Any:
        with self._lock:
            self.connect_streams += 1
        if self.connect is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "Connect not scripted")
        yield from self.connect(requests, context)

    def start(self) -> "FakeGateway":
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=None)


@pytest.fixture
def fake_gateway():
    gateway = FakeGateway().start()
    yield gateway
    gateway.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class System:
    """The whole toolplane (run-all: gateway + image + code + search) as child processes on loopback."""

    def __init__(self) -> None:
        self.ports = {name: free_port() for name in ("GATEWAY", "IMAGE", "CODE", "SEARCH")}
        self.log: List[str] = []
        env = dict(os.environ, **{f"TOOLPLANE_{name}_PORT": str(port) for name, port in self.ports.items()})
        self.process = subprocess.Popen(
            ["node", str(ROOT / "dist/services/runtime/src/run-all.js")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 90
        listening = 0
        while listening < 4:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError("run-all exited early:\n" + "".join(self.log))
            self.log.append(line)
            if '"grpc server listening"' in line:
                listening += 1
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("run-all did not start in 90 s:\n" + "".join(self.log))
        # Keep reading so the children never block on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()
        self.gateway = f"127.0.0.1:{self.ports['GATEWAY']}"

    def _drain(self) -> None:
        for line in self.process.stdout:
            self.log.append(line)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session")
def system():
    if not (ROOT / "dist/services/runtime/src/run-all.js").is_file():
        pytest.fail("dist/ is not built: run `make build` first")
    running = System()
    yield running
    running.stop()


class Service:
    """One toolplane service process (node dist/services/<name>/src/main.js) on a loopback port."""

    def __init__(self, name: str, port: int, env: Dict[str, str]) -> None:
        self.name = name
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self.log: List[str] = []
        self.process = subprocess.Popen(
            ["node", str(ROOT / f"dist/services/{name}/src/main.js")],
            env=dict(os.environ, TOOLPLANE_GRPC_PORT=str(port), **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 60
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"{name} exited early:\n" + "".join(self.log))
            self.log.append(line)
            if '"grpc server listening"' in line:
                break
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{name} did not start in 60 s:\n" + "".join(self.log))
        threading.Thread(target=lambda: self.log.extend(self.process.stdout), daemon=True).start()

    def kill(self) -> None:
        """SIGKILL: the process dies the way a crashed sandbox host does, with no graceful shutdown."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
