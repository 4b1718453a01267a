import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createLogger } from "../../../runtime/src/index.js";
import { KernelPool } from "./pool.js";
import { defaultKernelPath } from "./sandbox.js";

function pool(): KernelPool {
  return new KernelPool(
    {
      size: 1,
      warmupConcurrency: 1,
      bwrapPath: process.env.TOOLPLANE_CODE_BWRAP_PATH ?? "/usr/bin/bwrap",
      pythonPath: process.env.TOOLPLANE_CODE_PYTHON_PATH ?? "/usr/bin/python3",
      kernelPath: defaultKernelPath(),
      hostUid: process.getuid?.() === 0 ? 65534 : undefined,
      tmpBytes: 16 * 1024 * 1024,
      maxFrameBytes: 1024 * 1024,
    },
    createLogger("test", "silent"),
  );
}

describe("KernelPool (real sandboxes)", () => {
  it("serves a burst beyond its size in arrival order, each caller getting its own live kernel", async () => {
    const kernels = pool();
    await kernels.start();
    const order: number[] = [];
    const taken = await Promise.all(
      [0, 1, 2].map((index) =>
        kernels.acquire().then((kernel) => {
          order.push(index);
          return kernel;
        }),
      ),
    );
    assert.deepEqual(order, [0, 1, 2]);
    assert.equal(new Set(taken).size, 3);
    assert.ok(taken.every((kernel) => kernel.alive));
    for (const kernel of taken) kernel.kill("test over");
    await kernels.stop();
  });

  it("stop() fails the callers still waiting and kills what it holds", async () => {
    const kernels = pool();
    await kernels.start();
    const first = await kernels.acquire();
    const waiting = assert.rejects(kernels.acquire(), /the kernel pool is stopped/);
    await kernels.stop();
    await waiting;
    await assert.rejects(kernels.acquire(), /the kernel pool is stopped/);
    first.kill("test over");
  });
});
