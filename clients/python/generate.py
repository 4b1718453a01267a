#!/usr/bin/env python3
"""Generates the protobuf message modules of the toolplane client from proto/.

Runs `protoc --python_out` (grpcio-tools' bundled protoc when installed, else
the protoc on PATH, e.g. Debian's protobuf-compiler) into toolplane/_generated/. Only messages are
generated: the service stubs are built at import time from the service
descriptors (toolplane/_stub.py), so no grpc codegen plugin is needed and the
output works with grpcio 1.51 + protobuf 3.21 as well as current releases.

protoc names modules after proto paths (toolplane.common.v1.common_pb2), which
would collide with this package, also called `toolplane`; the imports between
generated modules are therefore rewritten to live under toolplane._generated.
"""

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

CLIENT_DIR = Path(__file__).resolve().parent
DEFAULT_PROTO_ROOT = CLIENT_DIR.parents[1] / "proto"
OUTPUT_DIR = CLIENT_DIR / "toolplane" / "_generated"
# The client talks to the gateway only; its protos and their imports.
PROTOS = ("toolplane/common/v1/common.proto", "toolplane/gateway/v1/gateway.proto")
GENERATED_IMPORT = re.compile(r"^from toolplane\.", re.MULTILINE)


def protoc_command() -> list[str]:
    # grpcio-tools bundles a protoc that matches the protobuf runtime it was installed with, so it
    # is preferred; Debian's protoc matches Debian's python3-protobuf.
    try:
        import grpc_tools.protoc  # noqa: F401
    except ImportError:
        protoc = shutil.which("protoc")
        if protoc is None:
            sys.exit("generate.py: neither grpcio-tools nor `protoc` (Debian: protobuf-compiler) is installed")
        return [protoc]
    return [sys.executable, "-m", "grpc_tools.protoc"]


def generate(proto_root: Path) -> None:
    for proto in PROTOS:
        if not (proto_root / proto).is_file():
            sys.exit(f"generate.py: {proto} not found under --proto-root {proto_root}")
    staging = OUTPUT_DIR.with_name("_generated.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    subprocess.run([*protoc_command(), f"-I{proto_root}", f"--python_out={staging}", *PROTOS], check=True)
    for module in staging.rglob("*_pb2.py"):
        source = module.read_text()
        module.write_text(GENERATED_IMPORT.sub("from toolplane._generated.toolplane.", source))
    for directory in [staging, *(path for path in staging.rglob("*") if path.is_dir())]:
        (directory / "__init__.py").touch()
    # Swapped in whole so a failed run never leaves a half-generated package behind.
    shutil.rmtree(OUTPUT_DIR, ignore_errors=True)
    staging.rename(OUTPUT_DIR)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proto-root", type=Path, default=DEFAULT_PROTO_ROOT, help="directory holding toolplane/")
    generate(parser.parse_args().proto_root.resolve())


if __name__ == "__main__":
    main()
