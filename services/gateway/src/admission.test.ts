import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CancelledError, DeadlineExceededError } from "../../runtime/src/index.js";
import { AdmissionRejectedError, FairShareExceededError, type Permit, ServiceLimiter } from "./admission.js";

/** A trajectory of rollout `rollout` (default "r") of the one caller "w". */
const key = (trajectoryId: string, rolloutId = "r") => ({ clientId: "w", rolloutId, trajectoryId });

describe("admission control", () => {
  it("runs up to the concurrency limit, queues up to the queue limit, then refuses with a retry hint", async () => {
    const limiter = new ServiceLimiter("code", { maxConcurrent: 2, maxQueue: 2 });
    const running = await Promise.all([limiter.acquire(key("a")), limiter.acquire(key("b"))]);
    const queued = [limiter.acquire(key("c")), limiter.acquire(key("d"))];
    assert.deepEqual(limiter.stats, { running: 2, queued: 2 });
    await assert.rejects(limiter.acquire(key("e")), (error: unknown) => {
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

  it("serves waiting trajectories round-robin, and rollouts round-robin above them", async () => {
    const limiter = new ServiceLimiter("search", { maxConcurrent: 1, maxQueue: 100, maxConcurrentPerTrajectory: 1 });
    const first = await limiter.acquire(key("busy"));
    const order: string[] = [];
    const waits: Promise<void>[] = [];
    const enqueue = (trajectory: string, rollout = "r") =>
      waits.push(
        limiter.acquire(key(trajectory, rollout)).then((permit: Permit) => {
          order.push(trajectory);
          permit.release();
        }),
      );
    for (let i = 0; i < 4; i++) enqueue("busy");
    // Three trajectories of one big rollout, then one of another rollout.
    enqueue("big-1", "big");
    enqueue("big-2", "big");
    enqueue("big-3", "big");
    enqueue("quiet");
    enqueue("small", "small");
    first.release();
    await Promise.all(waits);
    // Each rollout in turn (r, big, small), and within r each trajectory in turn: busy's second call comes last of them.
    assert.deepEqual(order.slice(0, 5), ["busy", "big-1", "small", "quiet", "big-2"], `order was ${order.join(",")}`);
  });

  it("a trajectory holds at most its share of slots: another finds one free at once", async () => {
    const limiter = new ServiceLimiter("image", { maxConcurrent: 8, maxQueue: 100 });
    const flood = Array.from({ length: 20 }, () => limiter.acquire(key("flood")));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(limiter.stats, { running: 2, queued: 18 }, "a quarter of 8 slots");
    const victim = limiter.tryAcquire(key("victim")) ?? (await limiter.acquire(key("victim")));
    assert.equal(victim.queuedMs < 50, true);
    assert.equal(limiter.stats.running, 3);
    victim.release();
    for (const pending of flood) (await pending).release();
    assert.deepEqual(limiter.stats, { running: 0, queued: 0 });
  });

  it("a trajectory's calls beyond its queue share are the model's RESOURCE_EXHAUSTED, not the infrastructure's", async () => {
    const limiter = new ServiceLimiter("search", {
      maxConcurrent: 1,
      maxQueue: 100,
      maxConcurrentPerTrajectory: 1,
      maxQueuedPerTrajectory: 3,
    });
    const held = await limiter.acquire(key("flood"));
    const queued = [1, 2, 3].map(() => limiter.acquire(key("flood")));
    await assert.rejects(limiter.acquire(key("flood")), (error: unknown) => {
      assert.ok(error instanceof FairShareExceededError);
      assert.equal(error.errorClass, "MODEL");
      assert.equal(error.retryable, false);
      assert.match(
        error.message,
        /this trajectory already has 3 calls waiting for the search service, over the limit of 3/,
      );
      return true;
    });
    held.release();
    for (const pending of queued) (await pending).release();
  });

  it("a full queue sheds the newest call of the trajectory holding more than its share for a newcomer's", async () => {
    const limiter = new ServiceLimiter("search", {
      maxConcurrent: 1,
      maxQueue: 4,
      maxConcurrentPerTrajectory: 1,
      maxQueuedPerTrajectory: 4,
    });
    const held = await limiter.acquire(key("holder"));
    const flood = [1, 2, 3, 4].map(() => limiter.acquire(key("flood")));
    const outcomes = flood.map((pending) =>
      pending.then(
        (permit) => {
          permit.release();
          return "granted";
        },
        (error: Error) => error,
      ),
    );
    const victim = limiter.acquire(key("victim"));
    const shed = await outcomes[3];
    assert.ok(shed instanceof FairShareExceededError, String(shed));
    assert.equal(shed.errorClass, "MODEL");
    assert.match(shed.message, /held 4 of its 4 calls, more than its even share of 2/);
    // The flooder's own next call is refused: it holds its share already.
    await assert.rejects(limiter.acquire(key("flood")), FairShareExceededError);
    held.release();
    (await victim).release();
    assert.deepEqual(await Promise.all(outcomes.slice(0, 3)), ["granted", "granted", "granted"]);
  });

  it("a full queue shared evenly is the infrastructure's overload", async () => {
    const limiter = new ServiceLimiter("search", { maxConcurrent: 1, maxQueue: 2, maxConcurrentPerTrajectory: 1 });
    const held = await limiter.acquire(key("a"));
    const queued = [limiter.acquire(key("b")), limiter.acquire(key("c"))];
    await assert.rejects(limiter.acquire(key("d")), (error: unknown) => {
      assert.ok(error instanceof AdmissionRejectedError);
      assert.equal(error.errorClass, "INFRASTRUCTURE");
      return true;
    });
    held.release();
    for (const pending of queued) (await pending).release();
  });

  it("tryAcquire takes a free slot at once but never one a waiting call is owed", async () => {
    const limiter = new ServiceLimiter("search", { maxConcurrent: 1, maxQueue: 5 });
    const first = limiter.tryAcquire(key("a"));
    assert.ok(first);
    assert.equal(limiter.tryAcquire(key("b")), undefined, "no free slot");
    const waiting = limiter.acquire(key("b"));
    first.release();
    assert.equal(limiter.tryAcquire(key("c")), undefined, "the freed slot went to the waiting call");
    (await waiting).release();
    assert.ok(limiter.tryAcquire(key("c")));
  });

  it("a waiting call whose deadline passes leaves the queue with DEADLINE_EXCEEDED", async () => {
    const limiter = new ServiceLimiter("image", { maxConcurrent: 1, maxQueue: 5 });
    const held = await limiter.acquire(key("a"));
    const deadline = new AbortController();
    setTimeout(() => deadline.abort(new DeadlineExceededError("deadline exceeded")), 20);
    await assert.rejects(limiter.acquire(key("b"), deadline.signal), (error: Error) => {
      assert.equal(error.name, "DeadlineExceededError");
      assert.match(error.message, /while queued .* for the image service/);
      return true;
    });
    assert.equal(limiter.stats.queued, 0);
    held.release();
    held.release();
    assert.equal(limiter.stats.running, 0, "release is idempotent");
  });

  it("a waiting call whose caller leaves is CANCELLED, not DEADLINE_EXCEEDED", async () => {
    const limiter = new ServiceLimiter("image", { maxConcurrent: 1, maxQueue: 5 });
    const held = await limiter.acquire(key("a"));
    const caller = new AbortController();
    setTimeout(() => caller.abort(new CancelledError("cancelled by caller")), 20);
    await assert.rejects(limiter.acquire(key("b"), caller.signal), CancelledError);
    assert.equal(limiter.stats.queued, 0);
    held.release();
  });
});
