#!/usr/bin/env python3
"""Runs clients/python/tests/verl under a Python that has pydantic 2, with this Python's packages behind it.

verl's ToolResponse and schema models are pydantic 2 models, and the stand-in of them (standin/verl) must run
their validators for real. Debian bookworm ships pydantic 1 only, so the tests run under another interpreter of
the same Python version (on these machines the image's pyenv python3) that has pydantic 2: this Python's
site-packages (grpcio, protobuf, Pillow, pytest) are appended to its path, so its own packages come first, and
the stand-in is put first, importable as `verl`. Without such an interpreter the tests are skipped, saying why.

Usage: python3 clients/python/tests/verl/run.py [pytest arguments]   (make test-python runs it)
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

HERE = Path(__file__).resolve().parent
PROBE = (
    "import sys, pydantic; "
    "print(pydantic.VERSION); sys.exit(0 if int(pydantic.VERSION.split('.')[0]) >= 2 else 1)"
)
BOOT = (
    "import sys; sys.path[:0] = [{standin!r}]; sys.path += {packages!r}; "
    "import pytest; sys.exit(pytest.main(sys.argv[1:]))"
)


def candidates() -> List[str]:
    """$TOOLPLANE_PYDANTIC2_PYTHON, then every python3 and python3.X of this version on PATH, in PATH order."""
    names = ("python3", f"python3.{sys.version_info.minor}")
    found = [os.environ.get("TOOLPLANE_PYDANTIC2_PYTHON", "")]
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        found += [os.path.join(directory, name) for name in names]
    unique = []
    for path in found:
        if path and os.access(path, os.X_OK) and os.path.realpath(path) != os.path.realpath(sys.executable):
            if path not in unique:
                unique.append(path)
    return unique


def same_version(python: str) -> bool:
    # grpcio's compiled module of this Python only loads in the same major.minor.
    probe = "import sys; print('%d.%d' % sys.version_info[:2])"
    answer = subprocess.run([python, "-c", probe], capture_output=True, text=True)
    return answer.stdout.strip() == "%d.%d" % sys.version_info[:2]


def pydantic2_python() -> Optional[str]:
    for python in candidates():
        if same_version(python) and subprocess.run([python, "-c", PROBE], capture_output=True).returncode == 0:
            return python
    return None


def main() -> int:
    python = pydantic2_python()
    if python is None:
        print(
            "SKIPPED clients/python/tests/verl: no Python %d.%d with pydantic 2 on PATH or in "
            "$TOOLPLANE_PYDANTIC2_PYTHON (verl's models are pydantic 2; Debian has pydantic 1 only)"
            % sys.version_info[:2]
        )
        return 0
    packages = [path for path in site.getsitepackages() if os.path.isdir(path)]
    boot = BOOT.format(standin=str(HERE / "standin"), packages=packages)
    arguments = sys.argv[1:] or ["-q", "-rs", "-p", "no:cacheprovider"]
    print(f"clients/python/tests/verl under {python} (pydantic 2), with {sys.executable}'s packages appended")
    command = [python, "-c", boot, *arguments, "--rootdir", str(HERE.parent), str(HERE)]
    return subprocess.run(command).returncode


if __name__ == "__main__":
    sys.exit(main())
