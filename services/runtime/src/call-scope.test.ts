import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { throwIfStopped, unboundedScope } from "./call-scope.js";
import { CancelledError, DeadlineExceededError } from "./errors.js";

describe("call scope", () => {
  it("an unbounded scope is never over", () => {
    const scope = unboundedScope();
    assert.equal(scope.deadlineMs, undefined);
    assert.equal(scope.signal.aborted, false);
    assert.doesNotThrow(() => throwIfStopped(scope, "work"));
  });

  it("a passed deadline is DEADLINE_EXCEEDED, naming the work not started", () => {
    assert.throws(
      () => throwIfStopped(unboundedScope(Date.now() - 1), "decoding"),
      (error: unknown) => error instanceof DeadlineExceededError && /before decoding/.test(error.message),
    );
  });

  it("a caller gone is CANCELLED, a signal aborted for its deadline DEADLINE_EXCEEDED", () => {
    const cancelled = new AbortController();
    cancelled.abort(new CancelledError("cancelled by caller"));
    assert.throws(() => throwIfStopped({ signal: cancelled.signal }, "work"), CancelledError);
    const expired = new AbortController();
    expired.abort(new DeadlineExceededError("deadline exceeded"));
    assert.throws(() => throwIfStopped({ signal: expired.signal }, "work"), DeadlineExceededError);
  });
});
