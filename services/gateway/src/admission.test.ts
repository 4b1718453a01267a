import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AdmissionRejectedError, type Permit, ServiceLimiter } from "./admission.js";

describe("admission control", () => {
  it("runs up to the concurrency limit, queues up to the queue limit, then refuses with a retry hint", async () => {
    const limiter = new ServiceLimiter("code", { maxConcurrent: 2, maxQueue: 2 });
    const running = await Promise.all([limiter.acquire("a"), limiter.acquire("a")]);
    const queued = [limiter.acquire("a"), limiter.acquire("b")];
    assert.deepEqual(limiter.stats, { running: 2, queued: 2 });
    await assert.rejects(limiter.acquire("c"), (error: unknown) => {
      assert.ok(error instanceof AdmissionRejectedError);
      assert.equal(error.errorClass, "INFRASTRUCTURE");
      assert.equal(error.retryable, true);
      assert.ok((error.retryAfterMs ?? 0) >= 10);
      assert.match(error.message, /code service overloaded: 2 calls running \(limit 2\) and 2 queued \(limit 2\)/);
      return true;
    });
    for (const permit of running) permit.release();
    const granted = await Promise.all(queued);
    assert.equal(limiter.stats.running, 2);
    for (const permit of granted) permit.release();
    assert.deepEqual(limiter.stats, { running: 0, queued: 0 });
  });

  it("serves waiting clients round-robin, so one busy client cannot starve another", async () => {
    const limiter = new ServiceLimiter("search", { maxConcurrent: 1, maxQueue: 100 });
    const first = await limiter.acquire("busy");
    const order: string[] = [];
    const waits: Promise<void>[] = [];
    const enqueue = (client: string) =>
      waits.push(
        limiter.acquire(client).then((permit: Permit) => {
          order.push(client);
          permit.release();
        }),
      );
    for (let i = 0; i < 4; i++) enqueue("busy");
    enqueue("quiet");
    first.release();
    await Promise.all(waits);
    assert.equal(order.indexOf("quiet"), 1, `order was ${order.join(",")}`);
  });

  it("tryAcquire takes a free slot at once but never one a waiting call is owed", async () => {
    const limiter = new ServiceLimiter("search", { maxConcurrent: 1, maxQueue: 5 });
    const first = limiter.tryAcquire();
    assert.ok(first);
    assert.equal(limiter.tryAcquire(), undefined, "no free slot");
    const waiting = limiter.acquire("a");
    first.release();
    assert.equal(limiter.tryAcquire(), undefined, "the freed slot went to the waiting call");
    (await waiting).release();
    assert.ok(limiter.tryAcquire());
  });

  it("a waiting call whose deadline passes leaves the queue with DEADLINE_EXCEEDED", async () => {
    const limiter = new ServiceLimiter("image", { maxConcurrent: 1, maxQueue: 5 });
    const held = await limiter.acquire("a");
    const deadline = new AbortController();
    setTimeout(() => deadline.abort(new Error("deadline exceeded")), 20);
    await assert.rejects(limiter.acquire("a", deadline.signal), (error: Error) => {
      assert.equal(error.name, "DeadlineExceededError");
      assert.match(error.message, /while queued .* for the image service/);
      return true;
    });
    assert.equal(limiter.stats.queued, 0);
    held.release();
    held.release();
    assert.equal(limiter.stats.running, 0, "release is idempotent");
  });
});
