import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CancelledError, ResourceExhaustedError } from "../../runtime/src/index.js";
import { WorkQueue } from "./limits.js";

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

const never = new AbortController().signal;

describe("WorkQueue", () => {
  it("never runs more than maxRunning at once and runs waiters in arrival order", async () => {
    const queue = new WorkQueue(2, 10, 50);
    let running = 0;
    let peak = 0;
    const order: number[] = [];
    const gates = Array.from({ length: 5 }, deferred);
    const jobs = gates.map((gate, index) =>
      queue.run(async () => {
        running += 1;
        peak = Math.max(peak, running);
        order.push(index);
        await gate.promise;
        running -= 1;
      }, never),
    );
    for (const gate of gates) {
      await new Promise((resolve) => setImmediate(resolve));
      gate.resolve();
    }
    await Promise.all(jobs);
    assert.equal(peak, 2);
    assert.deepEqual(order, [0, 1, 2, 3, 4]);
  });

  it("refuses at once when the queue is full: RESOURCE_EXHAUSTED, infrastructure, with a retry hint", async () => {
    const queue = new WorkQueue(1, 1, 75);
    const gate = deferred();
    const first = queue.run(() => gate.promise, never);
    const second = queue.run(async () => "second ran", never);
    await assert.rejects(
      queue.run(async () => "third", never),
      (error: unknown) => {
        assert.ok(error instanceof ResourceExhaustedError);
        assert.equal(error.errorClass, "INFRASTRUCTURE");
        assert.equal(error.retryAfterMs, 75);
        assert.match(error.message, /1 pipelines running and 1 waiting \(TOOLPLANE_IMAGE_MAX_QUEUE=1\)/);
        return true;
      },
    );
    gate.resolve();
    await first;
    assert.equal(await second, "second ran");
  });

  it("a caller that gives up while waiting leaves the queue and frees its place", async () => {
    const queue = new WorkQueue(1, 1, 50);
    const gate = deferred();
    const first = queue.run(() => gate.promise, never);
    const controller = new AbortController();
    const waiting = queue.run(async () => "must not run", controller.signal);
    controller.abort();
    await assert.rejects(waiting, CancelledError);
    const next = queue.run(async () => "next ran", never);
    gate.resolve();
    await first;
    assert.equal(await next, "next ran");
  });

  it("a slot is released when the work throws", async () => {
    const queue = new WorkQueue(1, 0, 50);
    await assert.rejects(
      queue.run(async () => {
        throw new Error("boom");
      }, never),
      /boom/,
    );
    assert.equal(await queue.run(async () => "ran", never), "ran");
  });
});
