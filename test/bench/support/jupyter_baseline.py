"""Baseline for the code service: the same cells in a Jupyter (IPython) kernel, as SandboxFusion-style servers run them.

Prints one JSON object: p50/p99 milliseconds for a new kernel + print(1), and for warm executes of each cell.
Usage: jupyter_baseline.py ITERATIONS NEW_KERNEL_ITERATIONS
"""

import json
import statistics
import sys
import time

import os

os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")

from jupyter_client.manager import start_new_kernel  # noqa: E402

# The same cells as test/bench/code-python, with display() doing the same PNG encoding the code service does.
CELLS = {
    "print": "print(1)",
    "numpy_pil_crop": (
        "import numpy as np\nfrom PIL import Image\ncrop = Image.fromarray(np.asarray(image_1)[100:300, 200:400])\n"
        "display(crop)\ncrop.size"
    ),
}
SETUP = (
    "import io\nimport numpy as np\nfrom PIL import Image\nimport cv2\nimport matplotlib\nmatplotlib.use('Agg')\n"
    "import matplotlib.pyplot as plt\n"
    "image_1 = Image.new('RGB', (1024, 768), (120, 30, 200))\n"
    "def display(img):\n    img.save(io.BytesIO(), 'PNG')"
)


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def run(client, code):
    client.execute_interactive(code, timeout=60, output_hook=lambda message: None)


def summary(samples):
    return {"p50_ms": statistics.median(samples), "p99_ms": percentile(samples, 0.99), "n": len(samples)}


def main():
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    new_kernel_iterations = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    result = {}

    new_kernel = []
    for _ in range(new_kernel_iterations):
        started = time.perf_counter()
        manager, client = start_new_kernel(kernel_name="python3")
        run(client, SETUP)
        run(client, "print(1)")
        new_kernel.append((time.perf_counter() - started) * 1000)
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    result["new_kernel_with_imports_print"] = summary(new_kernel)

    manager, client = start_new_kernel(kernel_name="python3")
    run(client, SETUP)
    for name, code in CELLS.items():
        run(client, code)
        samples = []
        for _ in range(iterations):
            started = time.perf_counter()
            run(client, code)
            samples.append((time.perf_counter() - started) * 1000)
        result[f"warm_{name}"] = summary(samples)
    client.stop_channels()
    manager.shutdown_kernel(now=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
