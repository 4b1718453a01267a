import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  CancelledError,
  DeadlineExceededError,
  ResourceExhaustedError,
  UnavailableError,
} from "../../runtime/src/index.js";
import { backoffMs, CircuitBreaker, parseRetryAfter, sleep, TokenBucket } from "./resilience.js";

describe("backoffMs", () => {
  it("grows exponentially up to the cap, with full jitter", () => {
    assert.equal(
      backoffMs(1, 100, 1000, undefined, () => 1),
      100,
    );
    assert.equal(
      backoffMs(3, 100, 1000, undefined, () => 1),
      400,
    );
    assert.equal(
      backoffMs(10, 100, 1000, undefined, () => 1),
      1000,
    );
    assert.equal(
      backoffMs(3, 100, 1000, undefined, () => 0),
      0,
    );
    assert.equal(
      backoffMs(3, 100, 1000, undefined, () => 0.5),
      200,
    );
  });

  it("never waits less than the provider's Retry-After", () => {
    assert.equal(
      backoffMs(1, 100, 1000, 2500, () => 1),
      2500,
    );
    assert.equal(
      backoffMs(4, 100, 1000, 10, () => 1),
      800,
    );
  });
});

describe("parseRetryAfter", () => {
  it("reads delta-seconds and HTTP dates", () => {
    assert.equal(parseRetryAfter("3"), 3000);
    assert.equal(parseRetryAfter("0.5"), 500);
    const now = Date.parse("2026-11-25T10:00:00Z");
    assert.equal(parseRetryAfter("Wed, 25 Nov 2026 10:00:07 GMT", now), 7000);
    assert.equal(parseRetryAfter("Wed, 25 Nov 2026 09:00:00 GMT", now), 0);
  });

  it("ignores absent or unreadable values", () => {
    assert.equal(parseRetryAfter(null), undefined);
    assert.equal(parseRetryAfter(""), undefined);
    assert.equal(parseRetryAfter("soon"), undefined);
  });
});

describe("TokenBucket", () => {
  it("lets a burst through, then spaces callers at the sustained rate", async () => {
    let now = 0;
    const bucket = new TokenBucket("p", 10, 2, () => now);
    const signal = new AbortController().signal;
    assert.equal(await bucket.acquire(signal, undefined), 0);
    assert.equal(await bucket.acquire(signal, undefined), 0);
    now = 50; // half a token refilled
    assert.equal(await bucket.acquire(signal, undefined), 50);
  });

  it("refuses a wait that would outlast the deadline, without consuming the token", async () => {
    let now = 0;
    const bucket = new TokenBucket("p", 1, 1, () => now);
    const signal = new AbortController().signal;
    await bucket.acquire(signal, undefined);
    await assert.rejects(bucket.acquire(signal, 500), (error: unknown) => {
      assert.ok(error instanceof ResourceExhaustedError);
      assert.equal(error.errorClass, "INFRASTRUCTURE");
      assert.equal(error.retryAfterMs, 1000);
      return true;
    });
    now = 1000;
    assert.equal(await bucket.acquire(signal, undefined), 0, "the refused caller's reservation was returned");
  });
});

describe("CircuitBreaker", () => {
  it("opens after the threshold, half-opens for exactly one probe, closes on success", () => {
    let now = 0;
    const breaker = new CircuitBreaker("p", 3, 1000, () => now);
    for (let i = 0; i < 2; i += 1) {
      breaker.admit();
      breaker.onFailure();
    }
    breaker.admit();
    breaker.onSuccess();
    assert.equal(breaker.currentState, "closed", "a success resets the consecutive count");
    for (let i = 0; i < 3; i += 1) {
      breaker.admit();
      breaker.onFailure();
    }
    assert.equal(breaker.currentState, "open");
    assert.throws(() => breaker.admit(), UnavailableError);
    now = 1000;
    breaker.admit();
    assert.equal(breaker.currentState, "half-open");
    assert.throws(() => breaker.admit(), /circuit open/, "only one probe at a time");
    breaker.onSuccess();
    assert.equal(breaker.currentState, "closed");
    breaker.admit();
  });

  it("a failed probe reopens the circuit for another cooldown", () => {
    let now = 0;
    const breaker = new CircuitBreaker("p", 1, 1000, () => now);
    breaker.admit();
    breaker.onFailure();
    now = 1000;
    breaker.admit();
    breaker.onFailure();
    assert.equal(breaker.currentState, "open");
    now = 1500;
    assert.throws(
      () => breaker.admit(),
      (error: unknown) => (error as UnavailableError).retryAfterMs === 500,
    );
  });

  it("a probe that ends without a verdict frees the slot for the next one", () => {
    let now = 0;
    const breaker = new CircuitBreaker("p", 1, 10, () => now);
    breaker.admit();
    breaker.onFailure();
    now = 10;
    breaker.admit();
    breaker.onNeutral();
    breaker.admit();
  });
});

describe("sleep", () => {
  it("rejects with CANCELLED when the caller leaves, DEADLINE_EXCEEDED when its deadline passed", async () => {
    const left = new AbortController();
    const cancelled = sleep(10_000, left.signal);
    left.abort();
    await assert.rejects(cancelled, CancelledError);
    const expired = new AbortController();
    const late = sleep(10_000, expired.signal);
    expired.abort(new DeadlineExceededError("deadline exceeded"));
    await assert.rejects(late, DeadlineExceededError);
  });
});
