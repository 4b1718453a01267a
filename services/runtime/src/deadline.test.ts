import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { deadlineSignal, MAX_TIMER_DELAY_MS, minDeadline, relativeTimeout, setDeadlineTimer } from "./deadline.js";

const settle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("deadline", () => {
  it("minDeadline is the earliest deadline set, Infinity when none is", () => {
    assert.equal(minDeadline(undefined, 300, 200), 200);
    assert.equal(minDeadline(undefined), Number.POSITIVE_INFINITY);
  });

  it("relativeTimeout stays within what setTimeout honours", () => {
    assert.equal(relativeTimeout(1_000, 2_000), 0);
    assert.equal(relativeTimeout(2_500, 2_000), 500);
    assert.equal(relativeTimeout(2 ** 40, 0), MAX_TIMER_DELAY_MS);
    assert.equal(relativeTimeout(Number.POSITIVE_INFINITY, 0), MAX_TIMER_DELAY_MS);
  });

  // Node turns a delay above 2^31-1 ms into 1 ms: unclamped, these fired at once.
  it("a deadline further away than 2^31-1 ms does not fire at once", async () => {
    let fired = false;
    const timer = setDeadlineTimer(Date.now() + 2 ** 32, () => {
      fired = true;
    });
    const far = deadlineSignal(Date.now() + 30 * 24 * 3600 * 1000, () => new Error("deadline"));
    await settle(50);
    timer.clear();
    far.clear();
    assert.equal(fired, false);
    assert.equal(far.signal.aborted, false);
  });

  it("a near deadline fires, with its reason", async () => {
    const near = deadlineSignal(Date.now() + 10, () => new Error("deadline"));
    await settle(60);
    assert.equal(near.signal.aborted, true);
    assert.equal((near.signal.reason as Error).message, "deadline");
  });

  it("an infinite deadline never arms a timer", async () => {
    let fired = false;
    const timer = setDeadlineTimer(Number.POSITIVE_INFINITY, () => {
      fired = true;
    });
    await settle(20);
    timer.clear();
    assert.equal(fired, false);
  });
});
