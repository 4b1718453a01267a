"""Fixtures for Python tests: the whole system started the way `make run` starts it."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def system():
    """Starts run-all (gateway + image + code + search) on free loopback ports."""
    ports = {name: free_port() for name in ("GATEWAY", "IMAGE", "CODE", "SEARCH")}
    env = dict(os.environ, **{f"TOOLPLANE_{name}_PORT": str(port) for name, port in ports.items()})
    process = subprocess.Popen(
        ["node", str(ROOT / "dist/services/runtime/src/run-all.js")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    listening = set()
    deadline = time.monotonic() + 60
    lines = []
    while len(listening) < 4:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("run-all exited early:\n" + "".join(lines))
        lines.append(line)
        if '"grpc server listening"' in line:
            listening.add(json.loads(line)["address"])
        if time.monotonic() > deadline:
            raise RuntimeError("run-all did not start:\n" + "".join(lines))
    yield {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    process.terminate()
    process.wait(timeout=20)


@pytest.fixture(scope="session")
def standard_stubs():
    """Python modules for grpc.health.v1 and grpc.reflection.v1 compiled from the public protos with protoc."""
    out = tempfile.mkdtemp(prefix="toolplane-pb-")
    health_dir = ROOT / "node_modules/grpc-health-check/proto/health/v1"
    reflection_dir = ROOT / "node_modules/@grpc/reflection/build/proto/grpc/reflection/v1"
    for directory, name in ((health_dir, "health.proto"), (reflection_dir, "reflection.proto")):
        subprocess.run(["protoc", f"-I{directory}", f"--python_out={out}", name], check=True)
    sys.path.insert(0, out)
    import health_pb2  # noqa: E402
    import reflection_pb2  # noqa: E402

    return health_pb2, reflection_pb2
