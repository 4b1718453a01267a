import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createLogger } from "../../../runtime/src/index.js";
import { FramedKernel, type Kernel } from "./channel.js";
import { KernelPool } from "./pool.js";

/** A kernel that is only alive until killed: the pool's rules, apart from any sandbox. */
class StubKernel extends FramedKernel {
  readonly pythonPid = undefined;
  constructor() {
    super(1024);
  }
  protected write(): void {}
  protected terminate(): void {
    this.ended({ code: null, signal: "SIGKILL", stderrTail: "" });
  }
}

function pool(started: Kernel[], size = 1): KernelPool {
  return new KernelPool(
    { size, warmupConcurrency: 1 },
    async () => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      const kernel = new StubKernel();
      started.push(kernel);
      return kernel;
    },
    createLogger("test", "silent"),
  );
}

describe("KernelPool", () => {
  it("serves a burst beyond its size in arrival order, each caller getting its own live kernel", async () => {
    const started: Kernel[] = [];
    const kernels = pool(started);
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

  it("replaces an idle kernel that dies", async () => {
    const started: Kernel[] = [];
    const kernels = pool(started);
    await kernels.start();
    started[0]?.kill("died");
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(kernels.stats.idle, 1);
    const kernel = await kernels.acquire();
    assert.ok(kernel.alive);
    assert.notEqual(kernel, started[0]);
    await kernels.stop();
  });

  it("stop() fails the callers still waiting and kills what it holds", async () => {
    const started: Kernel[] = [];
    const kernels = pool(started);
    await kernels.start();
    const first = await kernels.acquire();
    const waiting = assert.rejects(kernels.acquire(), /the kernel pool is stopped/);
    await kernels.stop();
    await waiting;
    await assert.rejects(kernels.acquire(), /the kernel pool is stopped/);
    assert.ok(started.filter((kernel) => kernel !== first).every((kernel) => !kernel.alive));
    first.kill("test over");
  });
});
